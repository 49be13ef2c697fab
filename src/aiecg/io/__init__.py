"""ECG file readers behind one registry; ``read_ecg(path)`` is the entry point.

Readers with a content sniffer are tried first (in registration order); files no sniffer recognises go to the
reader registered for their suffix. Vendor formats need the optional ``formats`` extra (ecgdatakit, pydicom).
"""

from aiecg.io import arrays, cardiosoft, matlab, vendor, wfdb
from aiecg.io.registry import (
    Reader,
    detect_format,
    ecg_files_in,
    get_reader,
    list_readers,
    read_ecg,
    register_reader,
)

register_reader(Reader("cardiosoft", cardiosoft.read_cardiosoft, cardiosoft.SUFFIXES, cardiosoft.sniff))
register_reader(Reader("wfdb", wfdb.read_wfdb, wfdb.SUFFIXES, claims=wfdb.claims))
register_reader(Reader("muse", vendor.read_muse, vendor.MUSE_SUFFIXES, vendor.sniff_muse))
register_reader(Reader("hl7_aecg", vendor.read_hl7_aecg, vendor.HL7_SUFFIXES, vendor.sniff_hl7_aecg))
register_reader(Reader("philips_sierra", vendor.read_philips_sierra, vendor.SIERRA_SUFFIXES, vendor.sniff_sierra))
register_reader(Reader("scp", vendor.read_scp, vendor.SCP_SUFFIXES, vendor.sniff_scp))
register_reader(Reader("dicom", vendor.read_dicom, vendor.DICOM_SUFFIXES, vendor.sniff_dicom))
register_reader(Reader("matlab", matlab.read_matlab, matlab.SUFFIXES))
register_reader(Reader("npy", arrays.read_npy, arrays.NPY_SUFFIXES, arrays.sniff_npy))
register_reader(Reader("npz", arrays.read_npz, arrays.NPZ_SUFFIXES))
register_reader(Reader("csv", arrays.read_csv, arrays.CSV_SUFFIXES))

__all__ = ["Reader", "detect_format", "ecg_files_in", "get_reader", "list_readers", "read_ecg", "register_reader"]
