"""mtc_keras.flows: the per-flow verdict rule and the flow table, driven by a fake model."""

import numpy as np
import pytest

from mtc_keras import evaluation, export, flows

# Hand-made case: flow a = rows 0, 1; flow b = rows 2, 3, 4 (two classes).
FLOW_IDS = np.array(["a", "a", "b", "b", "b"], object)
PROBABILITIES = {"app": np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])}


def test_flow_verdicts_mean_vote_first_n_and_labels_on_a_hand_made_case():
    verdicts = flows.flow_verdicts(FLOW_IDS, PROBABILITIES)
    assert verdicts.flows.tolist() == ["a", "b"] and verdicts.packets.tolist() == [2, 3]
    assert verdicts.guess["app"].tolist() == [0, 1]
    np.testing.assert_allclose(verdicts.confidence["app"], [0.75, 0.6])
    np.testing.assert_allclose(verdicts.vote_share["app"], [1.0, 2 / 3])
    # first 1: b is row 2 alone
    first = flows.flow_verdicts(FLOW_IDS, PROBABILITIES, first=1)
    assert first.packets.tolist() == [1, 1]
    np.testing.assert_allclose(first.confidence["app"], [0.9, 0.7])
    # "first" follows the capture positions, not the order given: b's first packet is row 4
    first = flows.flow_verdicts(FLOW_IDS, PROBABILITIES, first=1, order=[0, 1, 9, 8, 7])
    assert first.guess["app"].tolist() == [0, 0]
    np.testing.assert_allclose(first.confidence["app"], [0.9, 0.7])
    # mean and vote differ: c votes 0 twice, but its mean favours 1
    c = {"app": np.array([[0.55, 0.45], [0.55, 0.45], [0.05, 0.95]])}
    ids = np.array(["c"] * 3, object)
    assert flows.flow_verdicts(ids, c).guess["app"].tolist() == [1]
    assert flows.flow_verdicts(ids, c, aggregate="vote").guess["app"].tolist() == [0]
    # a flow's label: the most common label of its labelled rows; none labelled: missing
    labelled = flows.flow_verdicts(FLOW_IDS, PROBABILITIES,
                                   labels={"app": np.array([0, 0, 1, -1, 0])})
    assert labelled.labels["app"].tolist() == [0, 0]  # b: one 1, one 0 -> lower index on a tie
    labelled = flows.flow_verdicts(FLOW_IDS, PROBABILITIES,
                                   labels={"app": np.array([-1, -1, 1, 1, 0])})
    assert labelled.labels["app"].tolist() == [-1, 1]
    with pytest.raises(ValueError, match="aggregate"):
        flows.flow_verdicts(FLOW_IDS, PROBABILITIES, aggregate="max")


def test_flow_metrics_judge_flows_and_need_positions_for_first_n():
    labels = {"app": np.array([0, 0, 0, 0, 0])}  # b is wrong as a whole flow
    figures = evaluation.flow_metrics(labels, PROBABILITIES, FLOW_IDS, "ustc_tfc2016",
                                      order=np.arange(5))
    assert figures["app"]["all"]["support"] == 2 and figures["app"]["all"]["accuracy"] == 0.5
    assert figures["app"]["first_5"]["accuracy"] == 0.5
    by_first_two = flows.flow_verdicts(FLOW_IDS, PROBABILITIES, first=2, order=[0, 1, 2, 4, 3])
    assert by_first_two.guess["app"].tolist() == [0, 0]  # b's first two: rows 2 and 4
    without_positions = evaluation.flow_metrics(labels, PROBABILITIES, FLOW_IDS, "ustc_tfc2016")
    assert without_positions["app"]["first_5"] is None
    assert without_positions["app"]["all"] == figures["app"]["all"]


def fake_model(packets):
    """Class 1's probability is the packet's first byte / 255."""
    p = packets[:, 0].astype(float) / 255
    return {"app": np.stack([1 - p, p], axis=1), "traffic": np.stack([p, 1 - p], axis=1)}


def rows(*firsts):
    out = np.zeros((len(firsts), 8), np.uint8)
    out[:, 0] = firsts
    return out


def test_table_gives_a_verdict_at_the_first_n_packets_and_counts_the_rest():
    table = flows.FlowTable(fake_model, flow_packets=2)
    pushed = table.push(["a", "b", "a", "a", "b"], [1.0, 1.5, 2.0, 3.0, 4.0],
                        rows(255, 0, 204, 51, 0))
    assert [(v.key, v.reason, v.packets) for v in pushed.verdicts] == [("a", "packets", 2),
                                                                       ("b", "packets", 2)]
    a = pushed.verdicts[0]
    assert a.guess == {"app": 1, "traffic": 0} and a.confidence["app"] == pytest.approx(0.9)
    assert a.start == 1.0 and a.end == 2.0
    assert pushed.rows.tolist() == [0, 1, 2, 4] and pushed.flows == ["a", "b", "a", "b"]
    assert table.counts["classified"] == 4 and table.counts["not_classified"] == 1
    assert table.close() == []  # every flow has its verdict already
    assert table.counts["verdicts"] == 2


def test_table_times_out_idle_flows_and_a_later_packet_starts_a_new_flow():
    table = flows.FlowTable(fake_model, flow_timeout=10.0)
    first = table.push(["a", "b"], [0.0, 5.0], rows(255, 0))
    assert first.verdicts == []
    second = table.push(["b", "a"], [11.0, 12.0], rows(0, 0))  # a idle since 0: out at 11
    assert [(v.key, v.reason, v.packets) for v in second.verdicts] == [("a", "timeout", 1)]
    assert second.verdicts[0].guess["app"] == 1
    end = table.close()
    assert sorted((v.key, v.reason, v.packets) for v in end) == [("a", "end", 1), ("b", "end", 2)]
    assert table.counts["flows"] == 3 and table.counts["timed_out"] == 1


def test_table_evicts_the_least_recently_seen_flow():
    table = flows.FlowTable(fake_model, max_flows=2)
    pushed = table.push(["a", "b", "a", "c"], [0, 1, 2, 3], rows(255, 0, 255, 0))
    assert [(v.key, v.reason, v.packets) for v in pushed.verdicts] == [("b", "evicted", 1)]
    assert table.counts["evicted"] == 1 and len(table) == 2


def test_table_clock_never_runs_backwards_for_out_of_order_times():
    table = flows.FlowTable(fake_model, flow_timeout=10.0)
    table.push(["a"], [100.0], rows(0))
    # b is stamped before a, as interleaved interfaces do: it counts as seen at 100
    pushed = table.push(["b", "c"], [50.0, 105.0], rows(0, 0))
    assert pushed.verdicts == []  # b is not 55 s idle at 105
    pushed = table.push(["c"], [111.0], rows(0))  # a and b, last seen at 100, are now out
    assert sorted(v.key for v in pushed.verdicts) == ["a", "b"]
    assert all(v.reason == "timeout" for v in pushed.verdicts)
    assert [v.start for v in sorted(pushed.verdicts, key=lambda v: v.key)] == [100.0, 100.0]


def test_thresholds_and_the_flow_table_judge_the_same_flows_the_same_way():
    """fit_confidence_thresholds (the export) and FlowTable (mtc-classify) share one rule."""
    rng = np.random.default_rng(0)
    n = 400
    flow_ids = np.array([f"f{i}" for i in rng.integers(0, 60, n)], object)
    packets = rows(*rng.integers(0, 256, n).tolist())
    probabilities = fake_model(packets)
    # every row of a flow has its flow's label, as in the datasets
    flow_label = {key: rng.integers(0, 2, 2) for key in np.unique(flow_ids).tolist()}
    labels = {task: np.array([flow_label[key][t] for key in flow_ids.tolist()])
              for t, task in enumerate(("app", "traffic"))}
    for first in (3, None):
        for aggregate in flows.AGGREGATES:
            table = flows.FlowTable(fake_model, flow_packets=first or 0, aggregate=aggregate)
            made = table.push(flow_ids.tolist(), np.arange(n, dtype=float), packets).verdicts
            made += table.close()
            streamed = {v.key: v for v in made}
            batch = flows.flow_verdicts(flow_ids, probabilities, first=first, aggregate=aggregate)
            assert sorted(streamed) == batch.flows.tolist()
            for i, key in enumerate(batch.flows.tolist()):
                for task in probabilities:
                    assert streamed[key].guess[task] == batch.guess[task][i]
                    assert streamed[key].confidence[task] == pytest.approx(batch.confidence[task][i])
            # the thresholds are quantiles of exactly these confidences
            fit = export.fit_confidence_thresholds(labels, probabilities, flow_ids, share=0.0,
                                                   flow_packets=first, aggregate=aggregate)
            for task in probabilities:
                right = [v.confidence[task] for key, v in streamed.items()
                         if v.guess[task] == flow_label[key][list(probabilities).index(task)]]
                assert fit["tasks"][task]["correct"] == len(right)
                assert fit["tasks"][task]["threshold"] == pytest.approx(min(right), abs=1e-6)
