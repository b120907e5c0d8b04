"""mkdocs hook: regenerate the configuration reference from the config declarations before
every build, so the page cannot drift from the code (``mkdocs build --strict`` in CI)."""

from pathlib import Path


def on_pre_build(config, **kwargs) -> None:
    from glattn.config_reference import render_markdown

    page = Path(config["docs_dir"]) / "reference" / "configuration.md"
    text = render_markdown()
    if not page.is_file() or page.read_text() != text:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text)
