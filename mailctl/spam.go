package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"postern/pkg/control"
	"postern/pkg/mbox"
)

// The commands of this file train spamd's classifier and show what it learned, over
// control/spamd. spamd is the sole owner of its database: mailctl hands it each message
// as a descriptor and never opens the database itself.

// message is one message to learn: Size octets at Offset of a file.
type message struct {
	path         string
	offset, size int64
}

// messagesIn lists the messages of path: a Maildir folder's cur/ and new/ files, the
// messages of an mbox file, or the file itself.
func messagesIn(path string) ([]message, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		var out []message
		found := false
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(path, sub))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			found = true
			for _, e := range ents {
				if !e.Type().IsRegular() {
					continue
				}
				p := filepath.Join(path, sub, e.Name())
				info, err := e.Info()
				if err != nil {
					return nil, err
				}
				out = append(out, message{p, 0, info.Size()})
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is a directory but not a Maildir folder (no cur/ or new/)", path)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
		return out, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is neither a file nor a Maildir folder", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return splitMbox(path, f, fi.Size())
}

// splitMbox returns the messages of an mbox file (pkg/mbox finds them). A file that
// does not start with "From " is one message.
func splitMbox(path string, r io.Reader, size int64) ([]message, error) {
	s := mbox.NewScanner(r)
	var out []message
	for {
		m, err := s.Next()
		switch {
		case err == io.EOF:
			return out, nil
		case errors.Is(err, mbox.ErrNotMbox):
			return []message{{path, 0, size}}, nil
		case err != nil:
			return nil, err
		}
		out = append(out, message{path, m.Offset, m.Size})
	}
}

func runSpamTrain(a *app, o *options, args []string) error {
	if o.spam == o.ham {
		return usagef("give one of --spam and --ham")
	}
	user := ""
	if o.user != "" {
		var err error
		if user, err = checkAddress(o.user, false); err != nil {
			return usagef("%v", err)
		}
		// spamd names a recipient's corpus by the lower-cased address.
		user = strings.ToLower(user)
	}
	var msgs []message
	for _, p := range args {
		m, err := messagesIn(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		msgs = append(msgs, m...)
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	learned := 0
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for _, m := range msgs {
		if f == nil || f.Name() != m.path {
			if f != nil {
				f.Close()
			}
			if f, err = os.Open(m.path); err != nil {
				return fmt.Errorf("opening a message: %w", err)
			}
		}
		var res control.SpamLearnResult
		req := control.SpamLearnRequest{Spam: o.spam, User: user, Offset: m.offset, Size: m.size, OnError: o.onError}
		if err := a.call(cfg, "spamd", control.SpamLearn, req, &res, f); err != nil {
			return fmt.Errorf("learning %s: %w", m.path, err)
		}
		if res.Changed {
			learned++
		}
	}
	kind := "ham"
	if o.spam {
		kind = "spam"
	}
	known := "known already"
	if o.onError {
		known = "known already or classified right"
	}
	fmt.Fprintf(a.stdout, "%d messages learned as %s, %d %s\n", learned, kind, len(msgs)-learned, known)
	return nil
}

func runSpamStatus(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamStatusResult
	if err := a.call(cfg, "spamd", control.SpamStatus, nil, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CORPUS\tSPAM\tHAM\tTOKENS")
	fmt.Fprintf(tw, "global\t%d\t%d\t%d\n", res.Global.Spam, res.Global.Ham, res.Global.Tokens)
	for _, u := range res.Users {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", clean(u.User), u.Spam, u.Ham, u.Tokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Global.Spam >= res.MinSpam && res.Global.Ham >= res.MinHam {
		fmt.Fprintf(a.stdout, "the classifier gives an opinion on all mail (it needs %d spam and %d ham)\n", res.MinSpam, res.MinHam)
	} else {
		fmt.Fprintf(a.stdout, "the classifier gives no opinion yet: it needs %d spam and %d ham, global and recipient's together\n", res.MinSpam, res.MinHam)
	}
	return nil
}
