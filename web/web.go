// Package web holds the marketer console's templates and static assets,
// embedded in the parcours binary.
package web

import "embed"

// FS holds the console's files.
//
//go:embed *.html
var FS embed.FS
