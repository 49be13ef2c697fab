"""ECG file readers behind one registry; ``read_ecg(path)`` is the entry point."""

from aiecg.io import cardiosoft, wfdb
from aiecg.io.registry import Reader, detect_format, get_reader, list_readers, read_ecg, register_reader

register_reader(Reader("cardiosoft", cardiosoft.read_cardiosoft, cardiosoft.SUFFIXES, cardiosoft.sniff))
register_reader(Reader("wfdb", wfdb.read_wfdb, wfdb.SUFFIXES))

__all__ = ["Reader", "detect_format", "get_reader", "list_readers", "read_ecg", "register_reader"]
