"""HTML message bodies (Intercom, Zendesk html_body) to plain text: block elements
become line breaks, links keep their text and address, entities are decoded."""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.href: list[str | None] = []
        self.link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            self.href.append(dict(attrs).get("href"))
            self.link_text.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            href, text = self.href.pop(), self.link_text.pop()
            if href and href.startswith(("http://", "https://")) and href not in text:
                self.parts.append(f" ({href})")
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self.link_text:
            self.link_text[-1] += data


def html_to_text(html: str) -> str:
    if "<" not in html and "&" not in html:
        return html.strip()
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
