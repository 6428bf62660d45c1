package mime_test

import (
	"fmt"
	"io"
	"strings"

	"postern/pkg/mime"
)

const exampleMessage = "From: Alice <alice@example.org>\n" +
	"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n" +
	"Content-Type: multipart/mixed; boundary=b\n" +
	"\n" +
	"--b\n" +
	"Content-Type: text/plain; charset=iso-8859-1\n" +
	"Content-Transfer-Encoding: quoted-printable\n" +
	"\n" +
	"Caf=E9 at noon?\n" +
	"--b\n" +
	"Content-Type: application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf\n" +
	"Content-Transfer-Encoding: base64\n" +
	"\n" +
	"JVBERi0xLjQK\n" +
	"--b--\n"

// Parse a message (here with bare LF line endings) and read its parts.
func ExampleParse() {
	r := strings.NewReader(exampleMessage) // an *os.File in imapd
	m, err := mime.Parse(r, r.Size())
	if err != nil {
		panic(err)
	}
	fmt.Println("RFC822.SIZE", m.Size) // the CRLF form
	for i, p := range m.Root.Parts {
		fmt.Println(i+1, p.MediaType(), p.Encoding, p.Param("name"), p.BodyRange.Size)
	}
	// Output:
	// RFC822.SIZE 360
	// 1 text/plain quoted-printable  15
	// 2 application/pdf base64 résumé.pdf 12
}

// FETCH BODY[1]<0.4> and BINARY[1].
func ExampleMessage_Section() {
	r := strings.NewReader(exampleMessage)
	m, _ := mime.Parse(r, r.Size())
	sec, err := m.Section(mime.Section{Path: []int{1}})
	if err != nil {
		panic(err) // errors.Is(err, mime.ErrNoSection): answer with an empty string
	}
	b, _ := io.ReadAll(mime.Partial(sec, 0, 4))
	fmt.Printf("BODY[1]<0.4> %q\n", b)
	bin, err := m.Binary([]int{1}) // errors.Is(err, mime.ErrUnknownEncoding): NO [UNKNOWN-CTE]
	if err != nil {
		panic(err)
	}
	b, _ = io.ReadAll(bin)
	fmt.Printf("BINARY[1] %q\n", b)
	// Output:
	// BODY[1]<0.4> "Caf="
	// BINARY[1] "Caf\xe9 at noon?"
}

// SEARCH TEXT and SUBJECT, on the message and on text extracted once for a cache.
func ExampleMatcher() {
	r := strings.NewReader(exampleMessage)
	m, _ := mime.Parse(r, r.Size())
	cafe := mime.NewMatcher("CAFÉ")
	ok, _ := m.Contains(cafe, true)
	fmt.Println("TEXT café:", ok)
	fmt.Println("SUBJECT grüße:", m.HeaderContains("Subject", mime.NewMatcher("GRÜSSE")), m.HeaderContains("Subject", mime.NewMatcher("grüße")))
	t, _ := m.ExtractText(1 << 20)
	fmt.Println("cached BODY café:", t.Contains(cafe, false))
	// Output:
	// TEXT café: true
	// SUBJECT grüße: false true
	// cached BODY café: true
}
