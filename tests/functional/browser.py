"""A person at the sandbox's consent pages, driven with requests (no JavaScript needed).

`consent(url)` opens the provider page Warmline redirected to, fills in the form as a person
would (pick a mailbox, optionally untick scopes, press Allow or Cancel) and returns where the
provider sends the browser next: Warmline's callback, as a redirect (GET) or, for
response_mode=form_post, the auto-submitting form's POST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.checkboxes: list[tuple[str, str]] = []
        self.buttons: dict[str, str] = {}  # value -> name
        self.selects: dict[str, list[tuple[str, bool]]] = {}
        self.radios: dict[str, list[tuple[str, bool]]] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input":
            kind = a.get("type", "text")
            if kind == "hidden":
                self.fields.append((a["name"], a.get("value", "")))
            elif kind == "checkbox" and "checked" in a:
                self.checkboxes.append((a["name"], a.get("value", "on")))
            elif kind == "radio":
                self.radios.setdefault(a["name"], []).append((a.get("value", ""), "checked" in a))
        elif tag == "button" and a.get("name"):
            self.buttons[a.get("value", "")] = a["name"]
        elif tag == "select":
            self._select = a.get("name")
            self.selects[self._select or ""] = []
        elif tag == "option" and self._select is not None:
            self.selects[self._select].append((a.get("value", ""), "selected" in a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


@dataclass(frozen=True)
class Callback:
    method: str
    url: str
    data: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        from urllib.parse import parse_qsl, urlsplit

        return {**dict(parse_qsl(urlsplit(self.url).query)), **self.data}


def consent(
    url: str,
    *,
    mailbox: str,
    allow: bool = True,
    untick: tuple[str, ...] = (),
    session: requests.Session | None = None,
) -> Callback:
    """Answer the consent page at `url` as `mailbox`; return where the browser goes next."""
    http = session or requests.Session()
    page = http.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.text[:500])
    form = _Form()
    form.feed(page.text)
    data = list(form.fields)
    for name in list(form.selects) + list(form.radios):
        data.append((name, mailbox))
    data += [(n, v) for n, v in form.checkboxes if v not in untick]
    wanted = {"allow", "accept"} if allow else {"deny", "cancel"}
    value = next(v for v in form.buttons if v in wanted)
    data.append((form.buttons[value], value))
    answer = http.post(urljoin(url, form.action), data=data, allow_redirects=False, timeout=10)
    if answer.status_code == 200:  # form_post: an auto-submitting form aimed at the callback
        post = _Form()
        post.feed(answer.text)
        return Callback("POST", post.action, dict(post.fields))
    assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
    return Callback("GET", str(answer.headers["Location"]))
