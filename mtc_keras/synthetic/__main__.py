"""python -m mtc_keras.synthetic DIR [--packets_per_file N] [--flows_per_capture F] [--seed S] [--zip]:
writes the demo captures."""

from __future__ import annotations

from absl import app, flags

from mtc_keras.synthetic import (ARCHIVES, DEFAULT_FLOWS_PER_CAPTURE, DEFAULT_PACKETS_PER_FILE, DEFAULT_SEED,
                                 write_demo_captures)


def define_flags() -> None:
    """The command's flags, defined when it runs (not on import), so that importing this module
    next to other absl programs cannot clash over their names."""
    flags.DEFINE_integer("packets_per_file", DEFAULT_PACKETS_PER_FILE,
                         "Frames per capture (apps with other than 4 demo captures are scaled so "
                         "every app gets about 4x this).", lower_bound=1)
    flags.DEFINE_integer("flows_per_capture", DEFAULT_FLOWS_PER_CAPTURE,
                         "Sessions sharing a capture's frames, at most one per 10 frames (scaled "
                         "like the frames); 1: one round of the app's recipe, 2 or 3 long flows.",
                         lower_bound=1)
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Seed of the generator.")
    flags.DEFINE_bool("zip", False, "Write the five archives as .zip files.")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise app.UsageError("usage: python -m mtc_keras.synthetic DIR [--packets_per_file N] "
                             "[--flows_per_capture F] [--seed S] [--zip]")
    directory, values = argv[1], flags.FLAGS
    files = write_demo_captures(directory, values.packets_per_file, values.seed,
                                zip_archives=ARCHIVES if values.zip else (),
                                flows_per_capture=values.flows_per_capture)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1e6:.1f} MB, under {directory}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
