package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// OBJECTID (RFC 8474). A folder's MAILBOXID is made of its UIDVALIDITY, which the
// account never gives twice and which RENAME keeps (the index bucket moves), so the id
// survives a rename and a folder deleted and created again gets a new one (§4). A
// message's EMAILID is a digest of its Maildir base name, which MOVE keeps (§5.1: the
// id must survive a move); a COPY is a new file with a new name and id, which §5.1
// allows. THREADID is NIL: imapd keeps no thread ids (§5.2 allows it).

// mailboxID returns the MAILBOXID of a folder with the UIDVALIDITY v.
func mailboxID(v uint32) string {
	return "F" + strconv.FormatUint(uint64(v), 16)
}

// emailID returns the EMAILID of a message with the Maildir base name base.
func emailID(base string) string {
	sum := sha256.Sum256([]byte(base))
	return "M" + hex.EncodeToString(sum[:12])
}
