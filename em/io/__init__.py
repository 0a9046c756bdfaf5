"""File formats: HTK parameter files and RTTM speaker turns."""
from em.io.htk import HTKError, HTKHeader, kind_to_str, parse_kind, read_htk, write_htk
from em.io.rttm import Turn, read_rttm, segments_from_labels, write_rttm

__all__ = ["HTKError", "HTKHeader", "read_htk", "write_htk", "parse_kind", "kind_to_str",
           "Turn", "read_rttm", "write_rttm", "segments_from_labels"]
