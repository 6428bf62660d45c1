package tlsconf

import (
	"context"
	"os"
	"syscall"
	"time"

	"postern/pkg/config"
)

// fileStamp is what tells that a file was replaced or rewritten.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	missing  bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

// files lists the certificate and key files conf names.
func files(conf config.TLS) []string {
	var out []string
	if conf.Cert != "" {
		out = append(out, conf.Cert, conf.Key)
	}
	for _, p := range conf.Certificates {
		out = append(out, p.Cert, p.Key)
	}
	return out
}

// Watch calls reload each time the certificate or key files of conf change (a renewal
// by mailctl cert renew, certbot or anything else that replaces them), looking every
// interval, until ctx ends: a renewed certificate is served without a SIGHUP. The files
// are looked at first before Watch returns; the watching goes on in a goroutine. A change
// seen while a pair is half written makes a reload that fails and keeps the old
// certificates; the next look, after the other file changed, reloads again.
func Watch(ctx context.Context, conf config.TLS, interval time.Duration, reload func()) {
	paths := files(conf)
	last := make([]fileStamp, len(paths))
	for i, p := range paths {
		last[i] = stampOf(p)
	}
	go watch(ctx, paths, last, interval, reload)
}

func watch(ctx context.Context, paths []string, last []fileStamp, interval time.Duration, reload func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed := false
		for i, p := range paths {
			if s := stampOf(p); s != last[i] {
				last[i], changed = s, true
			}
		}
		if changed {
			reload()
		}
	}
}
