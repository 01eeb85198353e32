// Package znode validates and joins ZooKeeper node paths.
package znode

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("invalid znode path")

// Validate applies ZooKeeper's own rules (PathUtils.validatePath), so a bad
// path fails here with a clear message instead of as a server error.
func Validate(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalid, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case p[0] != '/':
		return bad("must start with /")
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return bad("must not end with /")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("relative segment " + seg)
		}
	}
	for _, r := range p {
		if r == 0 || (r > 0 && r < 0x20) || (r >= 0x7f && r <= 0x9f) ||
			(r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff) {
			return bad(fmt.Sprintf("invalid character %U", r))
		}
	}
	return nil
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
