import xml.etree.ElementTree as ET

import numpy as np
import pytest
from defusedxml import ElementTree as SafeET

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.errors import ECGReadError
from aiecg.io import cardiosoft, detect_format, read_ecg
from aiecg.io.cardiosoft import write_cardiosoft


def test_real_ukb_xml_reads_as_12_by_5000_at_500_hz_in_millivolts(cardiosoft_xml):
    ecg = read_ecg(cardiosoft_xml)
    assert detect_format(cardiosoft_xml).name == "cardiosoft"
    assert ecg.signal.shape == (12, 5000) and ecg.fs == 500.0 and ecg.leads == STANDARD_LEADS
    assert ecg.signal.dtype == np.float32
    # first samples of lead I are -4, -2, -2 at 5 uV/LSB
    np.testing.assert_allclose(ecg.lead("I")[:3], [-0.020, -0.010, -0.010], atol=1e-7)
    peak_to_peak = np.ptp(ecg.signal, axis=1)
    assert 0.3 < peak_to_peak.min() and peak_to_peak.max() < 5.0  # millivolts, not microvolts or LSB
    # Einthoven: III = II - I, within the 5 uV quantisation
    assert np.abs(ecg.lead("III") - (ecg.lead("II") - ecg.lead("I"))).max() < 0.011
    assert ecg.median.shape == (12, 600) and ecg.median_fs == 500.0
    assert ecg.measurements["VentricularRate"] == 50 and ecg.measurements["QRSDuration"] == 92
    assert ecg.lead_measurements["RAmplitude"]["V5"] == 1650
    assert np.isnan(ecg.lead_measurements["SAmplitude"]["I"])
    assert ecg.patient == {"pid": "1532006361", "age": 53.0, "sex": "male", "height_cm": 175.0, "weight_kg": 75.0}


def test_write_read_round_trip_within_quantisation(tmp_path):
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 0.5, (12, 5000)).astype(np.float32)
    median = rng.normal(0, 0.5, (12, 600)).astype(np.float32)
    ecg = ECG.from_array(signal, STANDARD_LEADS, 500.0, record_id="x", median=median, median_fs=500.0)
    path = write_cardiosoft(tmp_path / "1000001_20205_2_0.xml", ecg,
                            patient={"age": 61, "sex": "female", "height_cm": 160, "weight_kg": 70.5},
                            measurements={"VentricularRate": 64.0, "QRSDuration": 96.0},
                            lead_measurements={"RAmplitude": {lead: 1000.0 for lead in STANDARD_LEADS}})
    back = read_ecg(path)
    assert np.abs(back.signal - signal).max() <= 0.0025 + 1e-6  # half of 5 uV/LSB
    assert np.abs(back.median - median).max() <= 0.0025 + 1e-6
    assert back.patient["sex"] == "female" and back.patient["age"] == 61
    assert back.measurements == {"VentricularRate": 64.0, "QRSDuration": 96.0}
    assert back.lead_measurements["RAmplitude"]["aVL"] == 1000.0


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda text: text[: len(text) // 2], "not well-formed XML"),
        (lambda text: text.replace('<SampleRate units="Hz">500</SampleRate>\n\t\t<ChannelSampleCountTotal>5000',
                                   '<SampleRate units="Hz">0</SampleRate>\n\t\t<ChannelSampleCountTotal>5000'),
         "no valid SampleRate"),
        (lambda text: text.replace("<CardiologyXML>", "<CardiologyXML><!DOCTYPE x>", 1), "not well-formed"),
    ],
)
def test_bad_files_raise_ecg_read_error_naming_the_file(cardiosoft_xml, tmp_path, mutate, reason):
    text = cardiosoft_xml.read_text(encoding="iso-8859-1")
    bad = tmp_path / "bad.xml"
    bad.write_text(mutate(text), encoding="iso-8859-1")
    with pytest.raises(ECGReadError, match=reason) as info:
        read_ecg(bad)
    assert info.value.path == str(bad)


def test_entity_expansion_is_refused(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                    "<CardiologyXML>&b;</CardiologyXML>")
    with pytest.raises(ECGReadError, match="not well-formed XML"):
        read_ecg(bomb)


@pytest.mark.parametrize("head", ['<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1" ?>',
                                  '<?xml version="1.0" encoding="utf-8"?>', ""])
def test_entity_declarations_are_refused_whatever_the_declaration(tmp_path, head):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(head + '<!DOCTYPE r [<!ENTITY a "aaaa">]><CardiologyXML>&a;</CardiologyXML>', encoding="latin-1")
    with pytest.raises(ECGReadError, match=r"not well-formed XML \(EntitiesForbidden\(name='a'"):
        read_ecg(bomb)


def _tree_or_error(parse, data: bytes) -> tuple:
    try:
        return ("tree", ET.tostring(parse(data)))
    except ET.ParseError as exc:
        return ("error", str(exc))


def test_the_c_parser_reads_plain_documents_as_defusedxml_does(cardiosoft_xml, monkeypatch):
    data = cardiosoft_xml.read_bytes()
    documents = [data, data[: len(data) // 3], data.replace(b"</StripData>", b"</Strip>"),
                 data.replace(b"<StripData>", b"<StripData>&undefined;"), data + b"<junk/>",
                 data.replace(b"ISO-8859-1", b"UTF-8"), b'<?xml version="1.0"?><CardiologyXML a="1" a="2"/>']
    for document in documents:
        assert _tree_or_error(cardiosoft._parse_xml, document) == _tree_or_error(SafeET.fromstring, document)
    monkeypatch.setattr(cardiosoft.SafeET, "fromstring", lambda data: pytest.fail("defusedxml used"))
    assert cardiosoft._parse_xml(data).tag == "CardiologyXML"  # the real export takes the C parser


@pytest.mark.parametrize("document", [
    b'<?xml version="1.0"?><!DOCTYPE CardiologyXML><CardiologyXML/>',
    b'<?xml version="1.0"?><CardiologyXML><!-- a note! --></CardiologyXML>',
    b'<?xml version="1.0" encoding="cp037"?><CardiologyXML/>',
    b'<?xml version="1.0" encoding="UTF-16"?><CardiologyXML/>',
    b'<CardiologyXML/>',
    b'\xef\xbb\xbf<?xml version="1.0"?><CardiologyXML/>',
])
def test_documents_that_could_declare_entities_go_through_defusedxml(document, monkeypatch):
    monkeypatch.setattr(cardiosoft.ET, "fromstring", lambda data: pytest.fail("C parser used"))
    assert _tree_or_error(cardiosoft._parse_xml, document) == _tree_or_error(SafeET.fromstring, document)


def test_missing_file_and_unknown_content(tmp_path):
    with pytest.raises(ECGReadError, match="file not found"):
        read_ecg(tmp_path / "nope.xml")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ECGReadError, match="no reader recognises"):
        read_ecg(tmp_path / "notes.txt")


def test_challenge_mat_with_header_is_claimed_by_wfdb(shared_data):
    mat = shared_data / "cinc2021" / "E07500.mat"
    assert detect_format(mat).name == "wfdb"
    ecg = read_ecg(mat)
    assert ecg.signal.shape == (12, 5000) and ecg.patient["sex"] == "male" and ecg.patient["age"] == 78.0
