package main

import (
	"fmt"
	"os"
)

// encodeBinaryFile stores the binary parts of the message file at path in base64
// (mime.Message.EncodeBinaryParts), for a message APPENDed as a literal8 (RFC 3516
// §4.4): its content may hold NULs and bare LFs, which BODY[] cannot send and which the
// CRLF form of a message would alter, so that BINARY[] would not give back what the
// client stored. Dovecot stores such messages the same way. The converted file is
// written beside path, fsynced and renamed over it. It returns the new size, or -1
// when the message has no binary part and the file is left as it is.
func encodeBinaryFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("converting binary parts: %w", err)
	}
	defer f.Close()
	msg, err := parseFile(f)
	if err != nil {
		return -1, fmt.Errorf("converting binary parts: %w", err)
	}
	tmp := path + ".base64"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return -1, fmt.Errorf("converting binary parts: %w", err)
	}
	changed, err := msg.EncodeBinaryParts(out)
	if err == nil && changed {
		err = out.Sync()
	}
	var size int64
	if err == nil && changed {
		var st os.FileInfo
		if st, err = out.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && changed {
		err = os.Rename(tmp, path)
	}
	if err != nil || !changed {
		os.Remove(tmp)
	}
	if err != nil {
		return -1, fmt.Errorf("converting binary parts: %w", err)
	}
	if !changed {
		return -1, nil
	}
	return size, nil
}
