"""DKIM signing benchmark: what a signature adds to each message of a send.

    .venv/bin/python -m bench.dkim_signing [--messages 2000]

On equal terms, in one process, on the same messages (the sample issue's es-CR variant,
personalised per recipient by `MessageTemplate.render`, the send path) and the same keys:

- building the message unsigned (the baseline the signature adds to);
- our signer (worker.dkim.Signer: relaxed/simple, cryptography's OpenSSL RSA/Ed25519);
- dkimpy's signer (dkim.sign, relaxed/simple and the same h= list), the reference
  implementation most Python mailers use;
- where our signer's time goes: the body's SHA-256 alone, and the signature alone.

Every signed message of the run is checked with dkimpy's verifier (a sample of 20 per
signer, with the key's record as the DNS answer). Figures are printed; nothing asserts
them. dkimpy is a test dependency (`pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from bench.render import BASE_URL, SALT, SECRET, SENDER, sample_content
from newsletter import render
from newsletter.render import Variant, render_variant
from subscribers.tokens import subscriber_links
from worker import mime
from worker.dkim import Key, Signer, generate_key

DOMAIN, SELECTOR = "example.org", "bench"


def _template() -> mime.MessageTemplate:
    rendered = render_variant(sample_content(), Variant("es", "CR"), SENDER,
                              view_url=f"{BASE_URL}/v/bench/es-CR")
    return mime.MessageTemplate.build(
        rendered, from_name=SENDER.name, from_email="news@example.org",
        list_id="newsletter.example.org", feedback="bench:newsletter:example.org",
        slots=(render.UNSUBSCRIBE, render.PREFERENCES))


def _recipients(count: int) -> list[mime.Recipient]:
    out = []
    for n in range(count):
        unsubscribe, preferences = subscriber_links(BASE_URL, SECRET, n + 1, SALT)
        out.append(mime.Recipient(
            f"Persona {n}", f"persona{n}@example.net", f"<bench.{n}.k3y@example.org>",
            unsubscribe, {render.UNSUBSCRIBE: unsubscribe, render.PREFERENCES: preferences}))
    return out


def _per_message(work: Callable[[bytes], object], messages: list[bytes],
                 rounds: int = 3) -> float:
    """Median over `rounds` of the mean seconds per message."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for message in messages:
            work(message)
        timings.append((time.perf_counter() - start) / len(messages))
    return statistics.median(timings)


def _timed_each(work: Callable[[mime.Recipient], object],
                recipients: list[mime.Recipient]) -> float:
    start = time.perf_counter()
    for to in recipients:
        work(to)
    return (time.perf_counter() - start) / len(recipients)


def _verify(message: bytes, key: Key) -> bool:
    return bool(dkim.verify(message, dnsfunc=lambda name, timeout=5: key.record.encode()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    template, recipients = _template(), _recipients(args.messages)
    messages = [template.render(to) for to in recipients]
    size = statistics.mean(len(m) for m in messages) / 1024
    print(f"DKIM signing, {len(messages)} messages of the es-CR variant ({size:.1f} KB each), "
          f"Python {platform.python_version()}, cryptography {version('cryptography')}, "
          f"dkimpy {version('dkimpy')}\n")
    print(f"  {'':<44} {'per message':>12} {'messages/s':>12}")

    build_s = statistics.median(_timed_each(template.render, recipients) for _ in range(3))
    row("baseline: make the message (send path), unsigned", build_s)
    for algorithm in ("rsa", "ed25519"):
        bench_algorithm(algorithm, messages, build_s)


def row(name: str, seconds: float) -> None:
    print(f"  {name:<44} {seconds * 1e3:>9.3f} ms {1 / seconds:>12,.0f}")


def _dkimpy(message: bytes, key: Key, include: list[str]) -> bytes:
    signature: bytes = dkim.sign(
        message, SELECTOR.encode(), DOMAIN.encode(), key.private,
        canonicalize=(b"relaxed", b"simple"), include_headers=include,
        signature_algorithm=f"{key.algorithm}-sha256".encode())
    return signature


def bench_algorithm(algorithm: str, messages: list[bytes], build_s: float) -> None:
    key = generate_key(DOMAIN, SELECTOR, algorithm)  # type: ignore[arg-type]
    ours = Signer(key)
    h = ours.signature(messages[0]).split(b"h=", 1)[1].split(b";", 1)[0]
    include = [name.decode() for name in
               h.replace(b"\r\n", b"").replace(b" ", b"").split(b":")]
    ours_s = _per_message(ours.sign, messages)
    theirs_s = _per_message(lambda m: _dkimpy(m, key, include),
                            messages[: max(50, len(messages) // 10)], rounds=1)
    ok_ours = sum(_verify(ours.sign(m), key) for m in messages[:20])
    ok_theirs = sum(_verify(_dkimpy(m, key, include) + m, key) for m in messages[:20])
    print(f"\n{algorithm} ({'2048-bit' if algorithm == 'rsa' else 'RFC 8463'}): "
          f"verified by dkimpy: ours {ok_ours}/20, dkimpy's {ok_theirs}/20")
    row(f"our signer ({algorithm}-sha256)", ours_s)
    row(f"dkimpy's signer ({algorithm}-sha256)", theirs_s)
    print(f"  {'dkimpy / ours':<44} {theirs_s / ours_s:>11.1f}x")
    print(f"  {'make + our signature / make alone':<44} "
          f"{(build_s + ours_s) / build_s:>11.2f}x")
    if algorithm == "rsa":
        private = serialization.load_pem_private_key(key.private, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        digest = hashlib.sha256(b"x").digest()
        sign_s = _per_message(lambda m: private.sign(
            digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())), messages)
        body_s = _per_message(lambda m: base64.b64encode(
            hashlib.sha256(m.partition(b"\r\n\r\n")[2]).digest()), messages)
        row("  of which: the RSA signature alone", sign_s)
        row("  of which: the body's SHA-256 alone", body_s)

if __name__ == "__main__":
    main()
