#!/usr/bin/env python3
"""POP3 sessions through Python's poplib, as a download script would run them.

Usage: poplib_session.py HOST STLS_PORT TLS_PORT USER PASSWORD MSGID...
The INBOX holds exactly the messages whose Message-IDs are given, in that order.
First over port STLS_PORT with STLS (trusting the PEM file named by $POSTERN_CA): CAPA,
login, STAT, LIST, UIDL, RETR and TOP of every message, DELE of the first, QUIT. Then
over TLS_PORT with implicit TLS: the first message is gone, the UIDLs of the others are
unchanged. Prints the UIDLs of the second session and exits 0 when every step holds,
non-zero otherwise.
"""
import email
import os
import poplib
import ssl
import sys


def context():
    ctx = ssl.create_default_context()
    ca = os.environ.get("POSTERN_CA")
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = False  # the certificate names the host; we dial an IP
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def listing(lines):
    """Parses the lines of LIST or UIDL into {number: value}."""
    out = {}
    for line in lines:
        n, v = line.decode().split(" ", 1)
        out[int(n)] = v
    return out


def main():
    host, stls_port, tls_port, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    msgids = sys.argv[6:]

    P = poplib.POP3(host, stls_port, timeout=30)
    caps = P.capa()
    assert "STLS" in caps, caps
    assert "USER" not in caps or host in ("127.0.0.1", "::1"), caps
    P.stls(context())
    caps = P.capa()
    for want in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE"):
        assert want in caps, (want, caps)
    assert "STLS" not in caps, caps
    try:
        P.user(user)
        P.pass_("wrong password")
        raise AssertionError("a wrong password was accepted")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [AUTH]"), e
    P.user(user)
    resp = P.pass_(password)
    assert resp.startswith(b"+OK"), resp

    count, size = P.stat()
    assert count == len(msgids), (count, msgids)
    _, lines, _ = P.list()
    sizes = listing(lines)
    assert sum(int(s) for s in sizes.values()) == size, (sizes, size)
    _, lines, _ = P.uidl()
    uidls = listing(lines)
    assert len(set(uidls.values())) == count, uidls

    for n in range(1, count + 1):
        _, lines, octets = P.retr(n)
        msg = email.message_from_bytes(b"\r\n".join(lines) + b"\r\n")
        assert msg["Message-ID"] == msgids[n - 1], (n, msg["Message-ID"], msgids)
        # poplib takes off the byte-stuffing; the text is the message, CRLF counted.
        got = sum(len(l) + 2 for l in lines)
        assert got == int(sizes[n]), (n, got, sizes[n])
        assert b".starts with a dot" in lines, lines
        _, top, _ = P.top(n, 0)
        assert top[-1] == b"" and all(b"dot" not in l for l in top), top

    P.dele(1)
    try:
        P.retr(1)
        raise AssertionError("RETR of a deleted message succeeded")
    except poplib.error_proto:
        pass
    assert P.stat()[0] == count - 1
    P.quit()

    S = poplib.POP3_SSL(host, tls_port, context=context(), timeout=30)
    S.user(user)
    S.pass_(password)
    count2, _ = S.stat()
    assert count2 == count - 1, (count2, count)
    _, lines, _ = S.uidl()
    uidls2 = listing(lines)
    for n, u in uidls2.items():
        assert u == uidls[n + 1], (n, u, uidls)
    _, lines, _ = S.retr(1)
    msg = email.message_from_bytes(b"\r\n".join(lines) + b"\r\n")
    assert msg["Message-ID"] == msgids[1], msg["Message-ID"]
    S.quit()
    print("uidl", " ".join(uidls2[n] for n in sorted(uidls2)))
    print("poplib session ok")


if __name__ == "__main__":
    main()
