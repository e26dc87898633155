"""``snakemake --report`` after the smoke run: every report() output and its caption in it."""
import re

import pytest

from workflow_helpers import REPO, SMOKE_CONFIG, run_snakemake

RULES = REPO / "workflow" / "rules"
# report(R("plots/nerfs/{arch}.png"), caption="../report/nerf_previews.rst", ...) and the
# f-string form report(R(f"tables/{name}.md"), ...): (output pattern, caption file).
REPORT_CALL = re.compile(r'report\(\s*R\(f?"([^"]+)"\)\s*,\s*caption="\.\./report/([^"]+)"')


def report_outputs():
    """[(output pattern, caption file)] of every report() output declared in the rules."""
    found = [m for smk in sorted(RULES.glob("*.smk")) for m in REPORT_CALL.findall(smk.read_text())]
    assert found, f"no report() outputs found in {RULES}"
    return found


def pattern_glob(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "*", pattern)


def caption_phrase(caption_file: str) -> str:
    """The caption's first few words, outside any template expression."""
    text = (REPO / "workflow" / "report" / caption_file).read_text()
    words = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", text).split()
    return " ".join(words[:4])


@pytest.fixture(scope="module")
def report_html(smoke_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_snakemake(smoke_run, "--report", str(out), "--configfile", str(SMOKE_CONFIG))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out.read_text()


def test_report_lists_every_report_output_of_the_run(smoke_run, report_html):
    for pattern, _ in report_outputs():
        files = sorted((smoke_run / "results").glob(pattern_glob(pattern)))
        assert files, f"the smoke run made no {pattern}"
        for path in files:
            assert path.name in report_html, f"{path.name} missing from the report"


def test_report_has_every_caption(report_html):
    for _, caption in {(None, c) for _, c in report_outputs()}:
        phrase = caption_phrase(caption)
        assert phrase in report_html, f"caption {caption} ({phrase!r}) missing from the report"
