"""spamq/cli/feedback.py: reading a CSV/TSV of feedback, and naming a refused row's line."""

from spamq.cli.feedback import _chunks, _where, read_items


def test_a_csv_with_a_header_in_any_order(tmp_path):
    f = tmp_path / "fb.csv"
    f.write_text('label,text,note\nspam,"WIN, now ""free""",\n\nham,see you,from mum\n')
    assert list(read_items(f, "csv")) == [
        (2, {"label": "spam", "text": 'WIN, now "free"'}),
        (4, {"label": "ham", "text": "see you", "note": "from mum"})]


def test_a_tsv_without_a_header_is_text_label_category_note(tmp_path):
    f = tmp_path / "fb.tsv"
    f.write_text('"quoted" text\tspam\tprize\n ok \t ham \n')
    assert list(read_items(f, "tsv")) == [
        (1, {"text": '"quoted" text', "label": "spam", "category": "prize"}),
        (2, {"text": " ok ", "label": "ham"})]


def test_chunks_and_the_line_of_a_refused_item():
    chunks = list(_chunks(iter([(i, {}) for i in range(2500)]), 1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert _where("items[2].label", [5, 7, 9]) == "line 9 (label)"
    assert _where("items[1]", [5, 7]) == "line 7 (row)"
    assert _where("items", [5]) == "items"
