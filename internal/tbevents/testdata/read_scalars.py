"""Read scalars from a TensorBoard log folder the two ways TensorBoard does.

usage: read_scalars.py LOGDIR

Prints JSON {"legacy": {tag: [[step, value], ...]}, "ui": {...}}:
  legacy: tensorboard.backend.event_processing.event_accumulator's
          EventAccumulator.Scalars(), the long-standing reading API;
  ui:     MultiplexerDataProvider.read_scalars(plugin_name="scalars"), what
          the current TensorBoard web UI calls to draw its scalar charts.
Also checks the first event of every event file is file_version
"brain.Event:2". Run by tbevents_test.go.
"""
import glob
import json
import os
import sys

from tensorboard import context
from tensorboard.backend.event_processing import (
    data_provider,
    event_accumulator,
    event_file_loader,
    plugin_event_multiplexer,
)


def legacy(logdir):
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def ui(logdir):
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"scalars": 0})
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    runs = provider.read_scalars(
        context.RequestContext(), experiment_id="", plugin_name="scalars", downsample=10**6)
    if list(runs) != ["."]:
        sys.exit(f"error: {logdir}: runs {sorted(runs)}, want the folder itself as the only run")
    return {tag: [[d.step, d.value] for d in data] for tag, data in runs["."].items()}


def check_first_events(logdir):
    files = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    if not files:
        sys.exit(f"error: {logdir}: no event files")
    for path in files:
        first = next(iter(event_file_loader.LegacyEventFileLoader(path).Load()))
        if first.file_version != "brain.Event:2":
            sys.exit(f"error: {path}: first event is {first}, want file_version brain.Event:2")


def main(logdir):
    check_first_events(logdir)
    json.dump({"legacy": legacy(logdir), "ui": ui(logdir)}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
