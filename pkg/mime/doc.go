// Package mime reads stored messages the way an IMAP server needs them: the MIME tree
// (RFC 2045, RFC 2046) with the offsets of every header and body, the envelope
// (RFC 3501 §7.4.2, RFC 9051 §7.5.2), the sections of FETCH BODY[...] and BINARY[...]
// (RFC 3501 §6.4.5, RFC 3516), and case-insensitive text search for SEARCH
// (RFC 3501 §6.4.4) after transfer and charset decoding.
//
// Messages are files (in a Maildir) whose lines end in CRLF or in a bare LF. The parser
// reads through an io.ReaderAt and keeps only offsets and the parsed header fields, never
// the bodies, so a message of any size costs memory in proportion to its number of parts
// and the size of its headers. Every size this package reports to IMAP is the size of the
// CRLF form of the message (a bare LF counts as two octets), and every reader it returns
// yields that CRLF form, which is what RFC 3501 §2.3.1.1 and RFC 5322 require on the wire.
//
// The pieces:
//
//   - Parse: the MIME tree (Message, Part, Header, Param), lenient as real clients are:
//     invalid header lines are skipped, a missing final boundary ends the multipart at the
//     end of its parent, nesting deeper than MaxDepth and more than MaxParts parts stop
//     the descent.
//   - Part.Envelope, ParseAddressList: the ENVELOPE, with the raw (undecoded) header
//     values that IMAP sends, and lenient RFC 5322 §3.4 address lists with groups.
//   - DecodeHeader, DecodeWords: RFC 2047 encoded-words to UTF-8.
//   - Section, Message.Section, Message.Binary: FETCH BODY[section] as an
//     *io.SectionReader over the file (Partial applies <offset.count>), and BINARY[section]
//     (RFC 3516) through NewDecoder, whose ErrUnknownEncoding maps to NO [UNKNOWN-CTE].
//   - Matcher, Message.Contains, Message.HeaderContains, Message.ExtractText: SEARCH
//     BODY, TEXT, HEADER, FROM, TO, CC, BCC and SUBJECT, with a fast path that searches the
//     raw bytes of 7bit/8bit US-ASCII and UTF-8 parts without copying them, and a way to
//     extract the folded text once so that the server can cache it.
//
// The IMAP syntax of ENVELOPE and BODYSTRUCTURE is written by package imap
// (pkg/imap/structure.go) from the values this package returns.
package mime
