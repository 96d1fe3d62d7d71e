package main

import (
	"io"
	"strings"
	"unicode/utf8"
)

// writeTable prints rows as a bordered table like Alibaba's eascmd:
//
//	+-------------------+-------+
//	| Internet Endpoint | http… |
//	+-------------------+-------+
//
// A non-nil header gets its own row and a border under it.
func writeTable(w io.Writer, header []string, rows [][]string) {
	ncol := len(header)
	for _, r := range rows {
		ncol = max(ncol, len(r))
	}
	widths := make([]int, ncol)
	for _, r := range append([][]string{header}, rows...) {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	border := func() {
		for _, wd := range widths {
			b.WriteString("+" + strings.Repeat("-", wd+2))
		}
		b.WriteString("+\n")
	}
	row := func(r []string) {
		for i, wd := range widths {
			cell := ""
			if i < len(r) {
				cell = r[i]
			}
			b.WriteString("| " + cell + strings.Repeat(" ", wd-utf8.RuneCountInString(cell)+1))
		}
		b.WriteString("|\n")
	}
	border()
	if header != nil {
		row(header)
		border()
	}
	for _, r := range rows {
		row(r)
	}
	border()
	io.WriteString(w, b.String())
}
