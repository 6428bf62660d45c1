#!/usr/bin/env python3
"""A mail session through Python's imaplib, as a script client would run it.

Usage: imaplib_session.py HOST PORT USER PASSWORD
Connects with implicit TLS (trusting the PEM file named by $POSTERN_CA if set) and runs
login, list, create, append, select, search, fetch, store, copy, expunge, close, logout,
asserting the server's answers. Exits 0 when every step holds, non-zero otherwise.
"""
import email
import imaplib
import os
import re
import ssl
import sys


def ok(resp, what):
    typ, data = resp
    assert typ == "OK", f"{what}: {typ} {data!r}"
    return data


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context()
    ca = os.environ.get("POSTERN_CA")
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = False  # the certificate names localhost; we dial an IP
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    assert "IMAP4REV1" in M.capabilities, M.capabilities
    ok(M.login(user, password), "LOGIN")

    boxes = ok(M.list(), "LIST")
    names = [re.match(rb'\((.*?)\) (NIL|"[^"]*") "?(.*?)"?$', b).group(3).decode() for b in boxes]
    assert "INBOX" in names and "Sent" in names, names
    ok(M.create('"Py Folder"'), "CREATE")

    msgs = []
    for i in range(1, 4):
        m = (f"From: Py Client <py@other.test>\r\nTo: {user}\r\nSubject: python {i}\r\n"
             f"Date: Mon, 02 Jan 2006 15:04:0{i} +0000\r\nMessage-ID: <py{i}@other.test>\r\n\r\n"
             f"body number {i} with the word {'kumquat' if i == 2 else 'pear'}\r\n").encode()
        msgs.append(m)
        data = ok(M.append("INBOX", "(\\Seen)" if i == 1 else None, None, m), "APPEND")
        assert b"APPENDUID" in data[0], data

    data = ok(M.select("INBOX"), "SELECT")
    assert int(data[0]) == 3, data

    data = ok(M.search(None, "FROM", '"py@other.test"'), "SEARCH FROM")
    assert data[0].split() == [b"1", b"2", b"3"], data
    data = ok(M.search(None, "BODY", "kumquat"), "SEARCH BODY")
    assert data[0].split() == [b"2"], data
    data = ok(M.search(None, "UNSEEN"), "SEARCH UNSEEN")
    assert data[0].split() == [b"2", b"3"], data
    data = ok(M.search("UTF-8", "SUBJECT", "python"), "SEARCH CHARSET UTF-8")
    assert len(data[0].split()) == 3, data

    data = ok(M.fetch("1:3", "(FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"), "FETCH")
    assert len(data) == 3, data
    for i, line in enumerate(data):
        size = int(re.search(rb"RFC822\.SIZE (\d+)", line).group(1))
        assert size == len(msgs[i]), (size, len(msgs[i]))
    data = ok(M.fetch("2", "(BODY.PEEK[])"), "FETCH BODY.PEEK[]")
    assert data[0][1] == msgs[1], data[0][1]
    parsed = email.message_from_bytes(data[0][1])
    assert parsed["Subject"] == "python 2", parsed["Subject"]
    data = ok(M.fetch("2", "(FLAGS)"), "FETCH FLAGS")
    assert b"\\Seen" not in data[0], data
    data = ok(M.fetch("2", "(RFC822)"), "FETCH RFC822")
    assert data[0][1] == msgs[1]
    data = ok(M.fetch("2", "(FLAGS)"), "FETCH FLAGS")
    assert b"\\Seen" in data[0], ("RFC822 sets \\Seen", data)

    data = ok(M.store("1", "+FLAGS", "(\\Flagged)"), "STORE +FLAGS")
    assert b"\\Flagged" in data[0], data
    data = ok(M.store("1", "-FLAGS", "(\\Seen)"), "STORE -FLAGS")
    assert b"\\Seen" not in data[0], data

    typ, data = M.uid("SEARCH", None, "ALL")
    assert typ == "OK", data
    uids = data[0].split()
    assert len(uids) == 3, uids
    typ, data = M.uid("FETCH", uids[0], "(FLAGS)")
    assert typ == "OK" and b"\\Flagged" in data[0], data

    data = ok(M.copy("1:2", '"Py Folder"'), "COPY")
    data = ok(M.status('"Py Folder"', "(MESSAGES)"), "STATUS")
    assert b"MESSAGES 2" in data[0], data

    ok(M.store("3", "+FLAGS.SILENT", "(\\Deleted)"), "STORE +FLAGS.SILENT")
    data = ok(M.expunge(), "EXPUNGE")
    assert data == [b"3"], data
    data = ok(M.search(None, "ALL"), "SEARCH ALL")
    assert data[0].split() == [b"1", b"2"], data

    ok(M.close(), "CLOSE")
    ok(M.delete('"Py Folder"'), "DELETE")
    typ, data = M.logout()
    assert typ == "BYE", (typ, data)
    print("imaplib session ok")


if __name__ == "__main__":
    main()
