"""`python -m sandbox` (and `warmline sandbox`): run the Google and Microsoft stand-ins.

    python -m sandbox [--data-dir D] [--host 127.0.0.1] [--http-port 8025] [--https-port 8026]
                      [--demo] [--demo-messages 2000] [--latency-ms 0] [--log-requests]

Prints the HTTP and HTTPS base URLs, the CA file to trust for HTTPS, and the demo OAuth client.
`--demo` creates, if absent, a Google mailbox (ada@sandbox-gmail.test) and a Microsoft one
(grace@sandbox-outlook.test) with generated mail and calendars; with `--data-dir` they persist,
so tokens granted in one run stay valid in the next. Ctrl-C (or SIGTERM) stops cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sandbox import generate
from sandbox.server import Sandbox
from sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

DEMO_MAILBOXES = (
    # (email, provider, display name, seed)
    ("ada@sandbox-gmail.test", "google", "Ada Lovelace", 1815),
    ("grace@sandbox-outlook.test", "microsoft", "Grace Hopper", 1906),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local stand-ins for Google and Microsoft that speak the real wire protocols.",
    )
    p.add_argument("--data-dir", help="persist store, keys and certificates here (default: temp)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--http-port", type=int, default=8025)
    p.add_argument("--https-port", type=int, default=8026)
    p.add_argument("--demo", action="store_true", help="create the demo mailboxes if absent")
    p.add_argument("--demo-messages", type=int, default=2000, help="messages per demo mailbox")
    p.add_argument("--latency-ms", type=float, default=0.0, help="round-trip time per API call")
    p.add_argument("--log-requests", action="store_true", help="log every request line")
    return p


def seed_demo(sandbox: Sandbox, messages: int) -> list[str]:
    """Create the demo mailboxes that do not exist yet; return every demo address."""
    state = sandbox.state
    for email, provider, name, seed in DEMO_MAILBOXES:
        if state.store.get_mailbox(email) is not None:
            continue
        with state.lock:
            generate.generate_mailbox(
                state.store,
                email=email,
                provider=provider,
                seed=seed,
                messages=messages,
                display_name=name,
            )
    return [email for email, *_ in DEMO_MAILBOXES]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until interrupted; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.demo_messages < 1:
        print("--demo-messages must be at least 1", file=sys.stderr)  # noqa: T201
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        sandbox = Sandbox(
            data_dir=args.data_dir,
            host=args.host,
            http_port=args.http_port,
            https_port=args.https_port,
            latency=args.latency_ms or None,
            log_requests=args.log_requests,
        ).start()
    except (OSError, ValueError) as exc:
        print(f"sandbox: cannot start: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    try:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_signal)
            # Explicitly, not Python's default: a process started with SIGINT ignored (by a
            # shell's `&`, or a parent that ignores it) would otherwise never see Ctrl-C.
            signal.signal(signal.SIGINT, _on_signal)
        lines = [
            "Warmline sandbox (Google + Microsoft stand-ins)",
            f"  HTTP   {sandbox.http_url}",
            f"  HTTPS  {sandbox.https_url}",
            f"  CA     {sandbox.ca_path}",
            f"  data   {args.data_dir or '(temporary, deleted at exit)'}",
            f"  OAuth client id {DEFAULT_CLIENT_ID}  secret {DEFAULT_CLIENT_SECRET}",
            f"  Microsoft authority {sandbox.https_url}/common (trust the CA above)",
            f"  admin  {sandbox.http_url}/_sandbox/mailboxes",
        ]
        if args.demo:
            for email in seed_demo(sandbox, args.demo_messages):
                lines.append(f"  demo mailbox {email}")
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)  # noqa: T201
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if threading.current_thread() is threading.main_thread():
            # stopping takes a moment; a second Ctrl-C (or a group-wide signal) must not
            # leave half-closed listeners behind
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sandbox.stop()
    print("sandbox stopped", flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
