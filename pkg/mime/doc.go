// Package mime reads stored messages the way an IMAP server needs them: the MIME tree
// (RFC 2045, RFC 2046) with the offsets of every header and body, the envelope
// (RFC 3501 §7.4.2, RFC 9051 §7.5.2), the sections of FETCH BODY[...] and BINARY[...]
// (RFC 3501 §6.4.5, RFC 3516), and case-insensitive text search for SEARCH
// (RFC 3501 §6.4.4) after transfer and charset decoding.
//
// Messages are files (in a Maildir) whose lines end in CRLF or in a bare LF. The parser
// reads through an io.ReaderAt and keeps offsets and the parsed header fields, not the
// bodies (except a copy of a whole file of up to 32 KiB), so a message of any size costs
// memory in proportion to its number of parts and the size of its headers. Every size this package reports to IMAP is the size of the
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
//   - DecodeHeader: RFC 2047 encoded-words (and raw 8-bit) to UTF-8.
//   - Section, Message.Section, Message.Part, Partial: FETCH BODY[section] as an
//     *io.SectionReader over the file (Partial applies <offset.count>); ErrNoSection for
//     sections the message does not have.
//   - Message.Binary, Message.BinarySize, NewDecoder: BINARY[section] and BINARY.SIZE
//     (RFC 3516); ErrUnknownEncoding maps to NO [UNKNOWN-CTE].
//   - Matcher, Message.Contains, Message.HeaderContains, Message.ExtractText, Text, Fold:
//     SEARCH BODY, TEXT, HEADER, FROM, TO, CC, BCC and SUBJECT, with a fast path that
//     searches the raw octets of 7bit/8bit parts in UTF-8 or a single-octet charset
//     without converting them, and a way to extract the folded text once so that the
//     server can keep it and search it with Matcher.MatchFolded (ten to twenty times
//     faster than parsing and searching the message again).
//
// The IMAP syntax of ENVELOPE and BODYSTRUCTURE is written by package imap
// (pkg/imap/structure.go) from the values this package returns.
package mime
