package main

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// render executes a template into a buffer first, so that a failing template yields a
// clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("rendering a page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func itoa(n int) string { return strconv.Itoa(n) }

var templateFuncs = template.FuncMap{
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%d kB", n>>10)
		}
		return fmt.Sprintf("%d B", n)
	},
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		t = t.Local()
		if time.Since(t) < 20*time.Hour {
			return t.Format("15:04")
		}
		return t.Format("2 Jan 2006")
	},
	"q":    url.QueryEscape,
	"add":  func(a, b int) int { return a + b },
	"join": strings.Join,
}
