package mime

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// A binary part comes out in base64 and decodes to the very octets that went in, NULs
// and bare LFs included; the rest of the message is unchanged (RFC 3516 §4.4, imaptest's
// append-binary group).
func TestEncodeBinaryParts(t *testing.T) {
	bin := "\x00-\xe4\n\r\n\n" + strings.Repeat("\x01\xff", 60)
	in := "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\npre\r\n" +
		"--xx\r\nContent-Type: text/plain\r\n\r\ntext\nwith bare LF\r\n" +
		"--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\nX-After: 1\r\n\r\n" + bin +
		"\r\n--xx--\r\nepilogue\r\n"
	m := parseBytes(t, []byte(in))
	var out bytes.Buffer
	changed, err := m.EncodeBinaryParts(&out)
	if err != nil || !changed {
		t.Fatalf("EncodeBinaryParts = %v, %v", changed, err)
	}
	got := out.String()
	if !strings.HasPrefix(got, in[:strings.Index(in, "Content-Transfer-Encoding")]) ||
		!strings.Contains(got, "Content-Transfer-Encoding: base64\r\nX-After: 1\r\n\r\n") ||
		!strings.HasSuffix(got, "\r\n--xx--\r\nepilogue\r\n") || strings.Contains(got, "binary") {
		t.Errorf("converted message:\n%q", got)
	}
	b64 := got[strings.Index(got, "X-After: 1\r\n\r\n")+15 : strings.Index(got, "\r\n--xx--")]
	for _, l := range strings.Split(b64, "\r\n") {
		if len(l) > 76 || strings.Trim(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
			t.Errorf("base64 line %q", l)
		}
	}
	m2 := parseBytes(t, out.Bytes())
	if p, _ := m2.Part([]int{2}); p == nil || !strings.EqualFold(p.Encoding, "base64") {
		t.Fatalf("part 2 after conversion: %+v", p)
	}
	r, err := m2.Binary([]int{2})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := io.ReadAll(r)
	if string(dec) != bin {
		t.Errorf("BINARY[2] = %q, want %q", dec, bin)
	}
	if size, err := m2.BinarySize([]int{2}); err != nil || size != int64(len(bin)) {
		t.Errorf("BINARY.SIZE[2] = %d, %v, want %d", size, err, len(bin))
	}

	// A message without binary parts is left alone.
	out.Reset()
	m = parseBytes(t, []byte("Content-Transfer-Encoding: 8bit\r\n\r\nh\xc3\xa9\n"))
	if changed, err := m.EncodeBinaryParts(&out); changed || err != nil || out.Len() != 0 {
		t.Errorf("8bit message: %v, %v, %q", changed, err, out.String())
	}
	// A whole message in binary.
	m = parseBytes(t, []byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: BINARY\r\n\r\n\x00-\xe4\n\r\n\n"))
	if changed, err := m.EncodeBinaryParts(&out); !changed || err != nil ||
		out.String() != "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAC3kCg0KCg==" {
		t.Errorf("binary message: %v, %v, %q", changed, err, out.String())
	}
}

// Whatever the message, the conversion leaves no binary part behind and never fails
// on content.
func FuzzEncodeBinaryParts(f *testing.F) {
	for _, s := range []string{
		"Content-Transfer-Encoding: binary\r\n\r\n\x00\n\r\n",
		"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Transfer-Encoding: binary\n\n\x00\xff\n--a\nContent-Transfer-Encoding: binary\nContent-Transfer-Encoding: binary\n\nx\n--a--\n",
		"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00",
		"Content-Type: multipart/mixed; boundary=AAAA\r\nContent-Transfer-Encoding: binary\r\n\r\n--AAAA\r\nContent-Transfer-Encoding:\r\n\tbinary\r\n\r\n\x00\x00\x00\r\n--AAAA--",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := parseBytes(t, b)
		var out bytes.Buffer
		changed, err := m.EncodeBinaryParts(&out)
		if err != nil {
			t.Fatal(err)
		}
		if !changed {
			return
		}
		m2 := parseBytes(t, out.Bytes())
		if again, err := m2.EncodeBinaryParts(io.Discard); again || err != nil {
			t.Fatalf("binary parts left after conversion: %q", out.Bytes())
		}
	})
}
