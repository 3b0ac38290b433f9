// Package web holds the marketer console's templates and static assets,
// embedded in the parcours binary.
package web

import "embed"

// FS holds the console's files: the page templates and, under assets/, the
// small scripts and styles served at /assets/.
//
//go:embed *.html assets
var FS embed.FS
