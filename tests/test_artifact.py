"""The artifact file (train_gpt.py's EXPORT section): every compressor with and without byte shuffling, the header's
digest, artifacts written before it, and one error line for every file that is not an intact artifact of this
script (issue 27 item 3, issue 29 item 1 and its tracebacks)."""
from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import zstandard

import train_gpt as tg
from conftest import REPO

# The model of the committed old-format artifacts (tests/fixtures/artifact_f24f9bb/README.md).
SMALL = {"VOCAB_SIZE": "64", "NUM_LAYERS": "2", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1",
         "MLP_MULT": "2", "ROPE_DIMS": "8", "XSA_LAST_N": "1", "VE_LAYERS": "1", "VE_DIM": "8",
         "BIGRAM_VOCAB_SIZE": "32", "BIGRAM_DIM": "8"}
OLD = Path(__file__).parent / "fixtures" / "artifact_f24f9bb"
OLD_DEQUANTIZED_SHA256 = "8cb678825fef7ae91982415149c4d99627415500f30791a7ee89525bcc9be3ee"  # by the f24f9bb loader


@pytest.fixture(scope="module")
def model():
    """The fixtures' model: random weights of trained scale (seed 0), its settings."""
    args = tg.Hyperparameters(SMALL)
    torch.manual_seed(0)
    m = tg.GPT(args)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.03)
    return args, m.state_dict()


def payload_bytes(args, sd, shuffle: bool = False, change=None) -> bytes:
    """torch.save of the payload export() writes; change(payload) edits it first."""
    payload = tg.quantize_state_dict(sd, args.clip_percentiles, args.quant_scale_floor, shuffle)[0]
    payload["model_settings"] = args.model_settings()
    if change:
        change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def refusal(blob: bytes, name: str = "x.ptz") -> str:
    with pytest.raises(tg.RunError) as err:
        tg.load_artifact(blob, name)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"artifact {name} is ")
    return message


def state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().view(-1).view(torch.uint8).numpy().tobytes() if state[k].numel() else b"")
    return h.hexdigest()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("method", ["zstd", "brotli", "lzma"])
def test_every_compressor_and_shuffle_give_the_same_weights(model, method, shuffle):
    args, sd = model
    blob = tg.compress(payload_bytes(args, sd, shuffle), method)
    head = blob[: blob.index(b"\n")].decode()
    assert head == f"asqu-golf-artifact-v2 {method} sha256:{hashlib.sha256(blob[len(head) + 1:]).hexdigest()}"
    state, settings = tg.load_artifact(blob, "a.ptz")
    plain, _ = tg.load_artifact(tg.compress(payload_bytes(args, sd), "zstd"), "b.ptz")
    assert settings == args.model_settings() and state.keys() == sd.keys()
    for k in sd:
        assert state[k].dtype == sd[k].dtype and torch.equal(state[k], plain[k]), k
        if tg.is_control(k):  # ASQU beta and the other control tensors: bit-exact fp32
            assert torch.equal(state[k], sd[k]), k
    assert any("asqu.beta" in k for k in sd)


def test_shuffling_groups_the_bytes_by_place_and_shrinks_the_artifact(model):
    args, sd = model
    t = torch.tensor([1.0, 2.0], dtype=torch.float16)  # 0x3c00, 0x4000: low bytes 00 00, high bytes 3c 40
    assert tg.shuffle_bytes(t).view(torch.uint8).tolist() == [0x00, 0x00, 0x3C, 0x40]
    for t in (torch.randn(5, 3), torch.randn(()), torch.arange(7), torch.randn(4).half(), torch.zeros(0)):
        shuffled = tg.shuffle_bytes(t)
        assert shuffled.dtype == t.dtype and shuffled.shape == t.shape
        restored = tg.shuffle_bytes(shuffled, back=True)
        assert torch.equal(restored.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8))
    sizes = {shuffle: len(tg.compress(payload_bytes(args, sd, shuffle), "zstd")) for shuffle in (False, True)}
    assert sizes[True] < sizes[False]


@pytest.mark.parametrize("name", ["old_zstd.ptz", "old_zlib.ptz"])
def test_artifacts_written_before_the_header_still_load(name):
    """Written by train_gpt.py at f24f9bb: the same weights as that version's loader gave."""
    state, settings = tg.load_artifact((OLD / name).read_bytes(), name)
    assert state_digest(state) == OLD_DEQUANTIZED_SHA256
    args = tg.Hyperparameters(SMALL)
    assert settings == args.model_settings()
    tg.GPT(args).load_state_dict(state, strict=True)


def test_a_flipped_byte_anywhere_is_refused_as_damage(model):
    args, sd = model
    blob = tg.compress(payload_bytes(args, sd, True), "zstd")
    header = blob.index(b"\n") + 1
    assert zstandard.get_frame_parameters(blob[header:]).has_checksum
    positions = [*range(header + 1), *range(header + 1, len(blob), len(blob) // 200), len(blob) - 1]
    for pos in positions:
        damaged = bytearray(blob)
        damaged[pos] ^= 0x10
        assert refusal(bytes(damaged)).startswith("artifact x.ptz is damaged"), pos
    for damaged in (blob[:-1], blob + b"\0", blob[: len(blob) // 3]):
        assert refusal(damaged).startswith("artifact x.ptz is damaged: its bytes are not those written")


def test_an_artifact_larger_than_any_submission_is_refused_unread(tmp_path, monkeypatch):
    huge = tmp_path / "huge.ptz"
    with huge.open("wb") as f:
        f.truncate(64 * 2**30)  # a 64 GiB sparse file
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(tg.ConfigError) as err:
        tg.read_eval_only_artifact(tg.Hyperparameters({"EVAL_ONLY": str(huge)}))
    assert str(err.value) == (f"EVAL_ONLY={huge} is 68,719,476,736 bytes, more than any submission can be "
                              "(16,000,000); it is not an artifact of this script")


def test_decompression_is_bounded_and_a_refusal_says_why(model, monkeypatch):
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 1000)
    assert frame[4] == 0  # no content size, a window descriptor: declare 40 GiB in 8 bytes after it
    bomb = frame[:4] + bytes([0xC0]) + frame[5:6] + struct.pack("<Q", 40 * 2**30) + frame[6:]
    assert zstandard.frame_content_size(bomb) == 40 * 2**30
    assert refusal(bomb) == ("artifact x.ptz is damaged, truncated or not an artifact of this script: "
                             "zstd decompress error: Data corruption detected")
    args, sd = model
    monkeypatch.setattr(tg, "RAW_LIMIT", 10_000)  # payloads that do expand past the limit stop there
    for method in ("zstd", "brotli", "lzma"):
        assert refusal(tg.compress(payload_bytes(args, sd), method)).endswith(
            "it decompresses to more than 10,000 bytes, more than any artifact holds")


def test_a_refused_pickle_is_one_line(model):
    buf = io.BytesIO()
    torch.save({"format": tg.ARTIFACT_FORMAT, "path": Path("/etc")}, buf)  # a class weights_only refuses
    assert refusal(tg.compress(buf.getvalue(), "zstd")).endswith(
        "it holds Python objects besides tensors and tables (refused by torch.load(weights_only=True))")


def first_meta(payload) -> dict:
    return payload["meta"][next(iter(payload["meta"]))]


BAD_FIELDS = {  # a well-formed artifact (its digest right) with one bad field -> the reason given
    "dtype": (lambda p: first_meta(p).update(dtype="bfloat17"), "the dtype 'bfloat17', which torch lacks"),
    "settings": (lambda p: p.update(model_settings=["MODEL_DIM", 32]), "its model_settings is not a table of settings"),
    "tensors": (lambda p: p.pop("tensors"), "its entry 'tensors' is missing"),
    "unstored": (lambda p: p["meta"].update(ghost={"kind": "fp16", "dtype": "float32", "shape": [2]}),
                 "its entry 'ghost' is missing"),
}


@pytest.mark.parametrize("field", BAD_FIELDS)
def test_a_bad_field_is_one_line(model, field):
    args, sd = model
    change, reason = BAD_FIELDS[field]
    message = refusal(tg.compress(payload_bytes(args, sd, True, change), "lzma"))
    assert message.startswith("artifact x.ptz is damaged, truncated or not an artifact of this script: ")
    assert message.endswith(reason)


def test_the_raw_weights_and_a_missing_compressor_are_one_line(model, monkeypatch):
    buf = io.BytesIO()
    torch.save(model[1], buf)  # final_model.pt: a torch zip, not an artifact
    assert refusal(buf.getvalue()).endswith("(final_model.pt holds the raw weights, not the artifact)")
    blob = tg.compress(payload_bytes(*model), "brotli")
    monkeypatch.setitem(tg.CODECS, "brotli", (None, *tg.CODECS["brotli"][1:]))
    assert refusal(blob) == ("artifact x.ptz is brotli-compressed and this Python lacks that compressor's package "
                             "(pip install -r requirements.txt)")
    with pytest.raises(tg.ConfigError, match=r"^EXPORT_COMPRESSOR=brotli is not installed: pip install -r "):
        tg.Hyperparameters({"EXPORT_COMPRESSOR": "brotli"})


def test_a_brotli_without_bounded_decompression_counts_as_missing(tmp_path):
    """brotli < 1.2 has no output_buffer_limit: artifacts it would write could not be read back bounded."""
    (tmp_path / "brotli.py").write_text("class Decompressor:\n    def process(self, data):\n        return b''\n")
    proc = subprocess.run([sys.executable, "-c", "import train_gpt; print(train_gpt.brotli)"], cwd=REPO,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "None", proc.stderr
