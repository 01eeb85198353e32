// Package znode validates and joins ZooKeeper node paths.
package znode

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error Validate and ValidateSequential
// return.
var ErrInvalid = errors.New("invalid znode path")

// Validate returns an error, without any I/O, when a ZooKeeper server would
// reject p as the path of a node. It applies the server's own check,
// org.apache.zookeeper.common.PathUtils.validatePath (unchanged from 3.5 to
// 3.9), in Go terms:
//
//   - p starts with "/" and, unless it is "/", does not end with one;
//   - no component is empty ("//"), "." or "..";
//   - no character is NUL, U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF or
//     U+FFF0-U+FFFF.
//
// The server applies the character ranges to Java chars, which are UTF-16
// code units, not to code points. Every code point above U+FFFF becomes a
// surrogate pair, inside U+D800-U+F8FF, so emoji and everything else
// outside the Basic Multilingual Plane are rejected. The server decodes the
// request's bytes as UTF-8 and replaces what is not UTF-8 with U+FFFD,
// inside U+FFF0-U+FFFF, so p must be valid UTF-8.
//
// Names ZooKeeper keeps for itself, such as /zookeeper, are not a path rule
// and pass.
func Validate(p string) error { return validate(p, p) }

// ValidateSequential is Validate for the path given to a sequential create.
// The server checks that path only after appending the sequence number, so
// the last component may be empty or "." or "..": "/queue/" creates
// "/queue/0000000001". It is PathUtils.validatePath(path, true), which checks
// path+"1"; the server's own suffix (ten digits, or a minus sign and nine)
// decides the same way.
func ValidateSequential(p string) error { return validate(p, p+"1") }

// validate checks full, the path as the server will see it, and names p,
// the path as given, in its errors.
func validate(p, full string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalid, p, fmt.Sprintf(format, args...))
	}
	switch {
	case full == "":
		return bad("empty")
	case full[0] != '/':
		return bad("must start with /")
	case full == "/":
		return nil
	case strings.HasSuffix(full, "/"):
		return bad("must not end with /")
	}
	for seg := range strings.SplitSeq(full[1:], "/") {
		switch seg {
		case "":
			return bad("empty component (//)")
		case ".", "..":
			return bad("relative component %s", seg)
		}
	}
	for i, r := range full {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(full[i:], "\uFFFD"):
			return bad("byte %#x at %d is not UTF-8; ZooKeeper would read U+FFFD, which it rejects", full[i], i)
		case r > 0xFFFF:
			hi, lo := utf16.EncodeRune(r)
			return bad("%U at byte %d is stored as the UTF-16 surrogates %04X %04X, which ZooKeeper rejects", r, i, hi, lo)
		case r == 0:
			return bad("NUL at byte %d", i)
		case forbidden(r):
			return bad("%U at byte %d is in a range ZooKeeper rejects", r, i)
		}
	}
	return nil
}

// forbidden reports whether the server rejects the UTF-16 code unit u.
func forbidden(u rune) bool {
	return u <= 0x1F ||
		0x7F <= u && u <= 0x9F ||
		0xD800 <= u && u <= 0xF8FF ||
		0xFFF0 <= u && u <= 0xFFFF
}

// Join puts p, a valid absolute path, under root ("" or a valid path other
// than "/").
func Join(root, p string) string {
	switch {
	case root == "":
		return p
	case p == "/":
		return root
	}
	return root + p
}

// Strip undoes Join.
func Strip(root, p string) string {
	if root == "" {
		return p
	}
	if p == root {
		return "/"
	}
	return strings.TrimPrefix(p, root)
}

// Parent returns the parent of a valid path other than "/".
func Parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}
