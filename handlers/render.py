"""The one renderer: `templates/<lang>/<name>.<channel>.j2` into channel-ready content.
Which form a channel takes is the channel's (handlers/channels.py: `Channel.rendered`).

An email template has three blocks — `subject`, `text` and `html` — rendered by two Jinja
environments over the same files: the text one without escaping, the HTML one with
autoescape, so a resident's `<b>` shows up as typed in both. Telegram templates are
Telegram HTML and always autoescaped (Telegram rejects stray `<`, `>` and `&`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from handlers import i18n
from handlers.announcements_text import markdownish, plain_text

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Renderer:
    def __init__(self, zone: ZoneInfo, base_url: str, root: Path = TEMPLATES,
                 facts: dict[str, Any] | None = None) -> None:
        self.zone = zone
        self.base_url = base_url
        loader = jinja2.FileSystemLoader(str(root))
        common: dict[str, Any] = dict(
            loader=loader,
            undefined=jinja2.Undefined,  # optional flags (`too_short`) may be absent
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # read once per process: otherwise every message stats its template file
            # (~1 % of the mail path's CPU); edited templates take effect on restart
            auto_reload=False,
        )
        self._text = jinja2.Environment(autoescape=False, **common)
        self._html = jinja2.Environment(autoescape=True, **common)
        for env in (self._text, self._html):
            env.filters["date"] = lambda v, lang: i18n.long_date(v, lang, self.zone)
            env.filters["datetime"] = lambda v, lang: i18n.short_datetime(v, lang, self.zone)
            env.filters["status"] = i18n.status_label
            env.filters["on_day"] = i18n.on_day
            env.filters["short_day"] = i18n.short_day
            env.filters["label"] = i18n.label
            env.filters["notice"] = i18n.notice_name
            env.filters["size"] = i18n.file_size
            env.filters["refusal"] = i18n.refusal
            env.filters["signature"] = (lambda v, lang, html=env is self._html:
                                        i18n.signature_line(v, lang, self.zone, html))
            env.filters["markdownish"] = markdownish
            env.filters["plaintext"] = plain_text
            env.globals["plural"] = i18n.plural
            env.globals["base_url"] = base_url
            # facts the settings decide (a link code's hours, the renewal window), so a
            # template never states one the settings contradict
            env.globals.update(facts or {})

    def _template(self, env: jinja2.Environment, name: str, channel: str, lang: str):
        lang = i18n.language(lang)
        try:
            return env.get_template(f"{lang}/{name}.{channel}.j2")
        except jinja2.TemplateNotFound:
            return env.get_template(f"{i18n.DEFAULT_LANGUAGE}/{name}.{channel}.j2")

    def _block(self, env: jinja2.Environment, name: str, channel: str, lang: str,
               block: str, context: dict[str, Any]) -> str:
        template = self._template(env, name, channel, lang)
        if block not in template.blocks:
            return ""
        ctx = template.new_context({**context, "lang": i18n.language(lang)})
        return "".join(template.blocks[block](ctx)).strip()

    def email(self, name: str, lang: str, context: dict[str, Any]) -> dict[str, str]:
        """{subject, text, html} for one email."""
        return {
            "subject": " ".join(
                self._block(self._text, name, "email", lang, "subject", context).split()
            ),
            "text": self._block(self._text, name, "email", lang, "text", context) + "\n",
            "html": self._block(self._html, name, "email", lang, "html", context),
        }

    def telegram(self, name: str, lang: str, context: dict[str, Any]) -> dict[str, str]:
        """{text} in Telegram HTML, whole: the sender splits a long one into messages that
        fit Telegram's limit (bots/split.py), at safe boundaries with tags balanced."""
        template = self._template(self._html, name, "telegram", lang)
        return {"text": template.render({**context, "lang": i18n.language(lang)}).strip()}

    def text(self, name: str, suffixes: tuple[str, ...], lang: str, context: dict[str, Any]
             ) -> dict[str, str]:
        """{text}, plain, from the first template of `suffixes` (a channel's own form,
        then its fallback, handlers/channels.py) in the person's language, then the same
        in Polish: a reader gets their language in a shorter form before Polish."""
        lang = i18n.language(lang)
        names = [f"{each}/{name}.{suffix}.j2"
                 for each in dict.fromkeys((lang, i18n.DEFAULT_LANGUAGE)) for suffix in suffixes]
        template = self._text.select_template(names)
        return {"text": template.render({**context, "lang": lang}).strip()}

    def page(self, name: str, lang: str, context: dict[str, Any]) -> str:
        """An HTML page (`templates/pages/<name>.j2`), autoescaped."""
        template = self._html.get_template(f"pages/{name}.j2")
        return template.render({**context, "lang": i18n.language(lang)})
