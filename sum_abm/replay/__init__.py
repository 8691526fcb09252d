"""Conformance replay of ``sum-abm-trace/1`` files (format: tests/conformance/TRACE_FORMAT.md)."""

from sum_abm.replay.replay import FileReport, Mismatch, replay_file, replay_trace
from sum_abm.replay.traces import load_trace_file

__all__ = ["FileReport", "Mismatch", "load_trace_file", "replay_file", "replay_trace"]
