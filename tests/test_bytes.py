"""Byte accounting proven for the tokenizer in use (issue 14): the sp1024 tables unchanged, a byte-fallback
tokenizer without a usable '▁' counting a lone space as 1 byte, the probe check before training, and token
ids checked against VOCAB_SIZE when a shard is read."""
from __future__ import annotations

import numpy as np
import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

import train_gpt as tg
from conftest import real_tokenizer_path
from test_shard_tool import train_tokenizer

TEXT = ("The cat sat on the mat (twice). Numbers: 12 345 and 6.78; a  double space, tabs\tand\nnew lines. "
        "Quotes \"x\" - 'y' ! ? [z] {w} caf\u00e9 \u00fcber 42 x y z")


def old_tables(sp, vocab_size):
    """The tables as they were before the byte-fallback space fix (the reference for sp1024)."""
    base, lead, boundary = np.zeros(vocab_size, np.int16), np.zeros(vocab_size, bool), np.ones(vocab_size, bool)
    for i in range(sp.vocab_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            lead[i], piece = True, piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, lead, boundary


def old_count(tokens, tables):
    base, lead, boundary = tables
    tok = np.asarray(tokens)
    prev_boundary = np.concatenate(([True], boundary[tok[:-1]]))
    return base[tok].astype(np.float64) + (lead[tok] & ~prev_boundary)


@pytest.fixture(scope="module")
def fallback_models(tmp_path_factory):
    """A byte-fallback BPE vocabulary trained here, as is and with its '▁' piece marked unused."""
    folder = tmp_path_factory.mktemp("fb")
    path = train_tokenizer(folder / "fb.model", 512, byte_fallback=True)
    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    marked = 0
    for piece in proto.pieces:
        if piece.piece == "\u2581":
            piece.type = pb.ModelProto.SentencePiece.UNUSED
            marked += 1
    assert marked == 1
    nospace = folder / "fb_nospace.model"
    nospace.write_bytes(proto.SerializeToString())
    proto.normalizer_spec.add_dummy_prefix = True  # SentencePiece's default: a space before every text
    prefixed = folder / "fb_nospace_prefix.model"
    prefixed.write_bytes(proto.SerializeToString())
    return path, nospace, prefixed


def test_published_tables_are_unchanged():
    path = real_tokenizer_path()
    if not path.exists():
        pytest.skip(f"published tokenizer not found at {path}")
    sp = spm.SentencePieceProcessor(model_file=str(path))
    new, (base, lead, boundary) = tg.build_byte_luts(sp, 1024), old_tables(sp, 1024)
    assert np.array_equal(new.base, base) and np.array_equal(new.leading_space, lead)
    assert np.array_equal(new.boundary, boundary) and (new.byte_value == -1).all()  # no byte pieces
    ids = np.array([1] + sp.encode(TEXT * 3))
    assert np.array_equal(tg.stream_bytes(ids, new), old_count(ids, (base, lead, boundary)))
    assert tg.check_byte_tables(sp, new, str(path)) >= 8


@pytest.mark.parametrize("which", [0, 1])
def test_byte_fallback_counts_the_text(fallback_models, which):
    sp = spm.SentencePieceProcessor(model_file=str(fallback_models[which]))
    tables = tg.build_byte_luts(sp, sp.vocab_size())
    ids = sp.encode(TEXT)
    assert not any(sp.is_unknown(i) for i in ids)
    text_bytes = len(sp.normalize(TEXT).replace("\u2581", " ").encode("utf-8"))  # decode() keeps byte-spelled '▁' as is
    assert tg.stream_bytes(np.array(ids), tables).sum() == text_bytes
    assert tg.check_byte_tables(sp, tables, "tok.model") >= 10
    old = old_count(np.array(ids), old_tables(sp, sp.vocab_size())).sum()
    spaces_as_bytes = sum(1 for a, b, c in zip(ids, ids[1:], ids[2:])
                          if [sp.id_to_piece(t) for t in (a, b, c)] == ["<0xE2>", "<0x96>", "<0x81>"])
    if which == 1:  # without a usable '▁' every lone space is three byte pieces: the old tables counted 3 bytes
        assert spaces_as_bytes > 5 and old == text_bytes + 2 * spaces_as_bytes
    else:
        assert spaces_as_bytes == 0 and old == text_bytes


DOCUMENTS = [TEXT, "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0", "  two leading spaces", "x", "end with a space "]


def text_bytes_of(sp, document: str) -> int:
    """UTF-8 bytes of the document's normalized text without the space SentencePiece puts before it."""
    return len(sp.normalize(document).removeprefix("\u2581").replace("\u2581", " ").encode("utf-8"))


def test_byte_fallback_without_space_piece_counts_document_starts(fallback_models):
    """Byte fallback, no usable '▁', a dummy prefix (issue 23): every document's leading space is the byte pieces
    E2 96 81 after BOS, which count 0 bytes like a '▁' piece there; the probe check passes; documents in a BOS
    stream count exactly their text's bytes."""
    sp = spm.SentencePieceProcessor(model_file=str(fallback_models[2]))
    tables = tg.build_byte_luts(sp, sp.vocab_size())
    first = sp.encode(DOCUMENTS[1])[:3]
    assert [sp.id_to_piece(i) for i in first] == ["<0xE2>", "<0x96>", "<0x81>"]  # the leading space, in bytes
    assert tg.check_byte_tables(sp, tables, "fb.model") == len(tg.BYTE_PROBES)  # '日本語の文章' included
    stream = np.concatenate([[1] + sp.encode(doc) for doc in DOCUMENTS])
    counts = tg.stream_bytes(stream, tables)
    assert counts.sum() == sum(text_bytes_of(sp, doc) for doc in DOCUMENTS)
    spelled = [i + 1 for i in np.flatnonzero(stream == 1) if [sp.id_to_piece(int(t)) for t in stream[i + 1:i + 4]]
               == ["<0xE2>", "<0x96>", "<0x81>"]]
    assert len(spelled) >= 2 and (counts[spelled] == 0).all()  # a document's leading space in bytes: 0 bytes


def test_byte_fallback_tokenizer_trains_with_the_text_as_denominator(fallback_models, run_train, tmp_path):
    """A tiny run with that tokenizer trains, and the byte count its BPB divides by (val_loss / ln 2 x scored
    tokens / val_bpb, from the exact log line) equals the UTF-8 bytes of the validation documents' text."""
    from pydoc_data.topics import topics

    from shard_io import write_shard

    sp = spm.SentencePieceProcessor(model_file=str(fallback_models[2]))
    texts = [topics[key].strip() for key in sorted(topics)]
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "fineweb_train_000000.bin", np.concatenate([[1] + sp.encode(t) for t in texts[:60]]))
    val_docs = texts[60:62] + DOCUMENTS  # a few thousand tokens: one window of that length stays cheap on CPU
    stream = np.concatenate([[1] + sp.encode(t) for t in val_docs])
    write_shard(data / "fineweb_val_000000.bin", stream)
    # One evaluation window holds the whole stream: every token after the first BOS is scored once.
    proc = run_train(DATA_PATH=data, TOKENIZER_PATH=fallback_models[2], VOCAB_SIZE=sp.vocab_size(), ITERATIONS=2,
                     VAL_LOSS_EVERY=0, EVAL_STRIDE=0, EVAL_SEQ_LEN=len(stream) - 1, RUN_ID="fb")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("final_int6_roundtrip_exact"))
    loss, bpb = (float(x.split(":")[1]) for x in line.split()[1:3])
    denominator = loss / np.log(2) * (len(stream) - 1) / bpb
    expected = sum(text_bytes_of(sp, t) for t in val_docs)
    assert abs(denominator - expected) < 1e-6 * expected, (denominator, expected)


def test_probe_check_stops_a_miscounting_tokenizer(fallback_models, monkeypatch):
    sp = spm.SentencePieceProcessor(model_file=str(fallback_models[1]))
    tables = tg.build_byte_luts(sp, sp.vocab_size())
    monkeypatch.setattr(tg, "stream_bytes", lambda tokens, t: old_count(tokens, (t.base, t.leading_space, t.boundary)))
    with pytest.raises(tg.ConfigError, match=r"TOKENIZER_PATH=fb\.model: the byte tables count \d+ bytes for "):
        tg.check_byte_tables(sp, tables, "fb.model")


def test_out_of_range_token_ids_in_val_stop_before_training(run_train, tmp_path, small_data):
    import shutil

    from shard_io import read_shard, write_shard

    data = tmp_path / "data"
    shutil.copytree(small_data["data_path"], data)
    val = data / "fineweb_val_000000.bin"
    tokens = read_shard(val).astype(np.int64)
    tokens[17] = 2000
    write_shard(val, tokens.astype(np.uint16))
    proc = run_train(check=False, DATA_PATH=data)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {val}: token id 2000 >= VOCAB_SIZE=1024; the shard was made with another tokenizer: set "
        "VOCAB_SIZE and TOKENIZER_PATH to match it, or rebuild the shard")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "runs").exists()


def test_out_of_range_token_ids_in_a_later_train_shard(run_train, tmp_path, small_data):
    import shutil

    from shard_io import read_shard, write_shard

    data = tmp_path / "data"
    shutil.copytree(small_data["data_path"], data)
    shard = sorted(data.glob("fineweb_train_*.bin"))[1]
    tokens = read_shard(shard).astype(np.int64)
    tokens[5] = 1024
    write_shard(shard, tokens.astype(np.uint16))
    # 4 shards of ~77k tokens; 40 steps of 2048 tokens reach the second one
    proc = run_train(check=False, DATA_PATH=data, ITERATIONS=60, VAL_LOSS_EVERY=0, EVAL_STRIDE=0, RUN_ID="ids")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {shard}: token id 1024 >= VOCAB_SIZE=1024" in proc.stderr
    assert f"error: {shard}: token id 1024" in (tmp_path / "logs/ids.txt").read_text()  # the log says why it ended
