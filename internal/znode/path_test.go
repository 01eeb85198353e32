package znode

import (
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/internal/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// edge is one class of path at the edge of ZooKeeper's rules: ok is the
// server's verdict on the path itself, seq its verdict on the path given to
// a sequential create (which it checks with the sequence number appended).
// TestIntegration_ServerAgrees puts every one to a real server.
type edge struct {
	name    string
	path    string
	ok, seq bool
}

var edges = []edge{
	// Shape.
	{"root", "/", true, true},
	{"one component", "/a", true, true},
	{"nested", "/a/b-c_d.e", true, true},
	{"lock node name", "/locks/_c_0f6a-lock-0000000001", true, true},
	{"empty", "", false, false},
	{"relative", "a", false, false},
	{"relative with slash", "a/b", false, false},
	{"trailing slash", "/a/", false, true},
	{"root twice", "//", false, false},
	{"leading empty component", "//a", false, false},
	{"inner empty component", "/a//b", false, false},
	{"trailing empty component", "/a//", false, false},
	{"dot", "/.", false, true},
	{"dot dot", "/..", false, true},
	{"dot inner", "/a/./b", false, false},
	{"dot last", "/a/.", false, true},
	{"dot dot inner", "/a/../b", false, false},
	{"dot dot last", "/a/..", false, true},
	{"dot dot first", "/../a", false, false},
	{"three dots", "/...", true, true},
	{"leading dot", "/.a", true, true},
	{"trailing dot", "/a.", true, true},
	{"leading dot dot", "/..a", true, true},
	{"trailing dot dot", "/a..", true, true},
	{"dot dot dot then dot", "/.../.x", true, true},
	{"zookeeper is not a path rule", "/zookeeper", true, true},
	{"under zookeeper is not a path rule", "/zookeeper/x", true, true},

	// U+0000-U+001F: NUL and the C0 controls.
	{"NUL", "/a\x00b", false, false},
	{"NUL last", "/a\x00", false, false},
	{"U+0001", "/a\u0001", false, false},
	{"tab", "/a\tb", false, false},
	{"newline", "/a\nb", false, false},
	{"U+001F", "/a\u001f", false, false},
	{"U+0020 space", "/a b", true, true},
	{"U+007E", "/a~", true, true},
	// U+007F-U+009F: DEL and the C1 controls.
	{"U+007F", "/a\u007f", false, false},
	{"U+0085", "/a\u0085", false, false},
	{"U+009F", "/a\u009f", false, false},
	{"U+00A0", "/a\u00a0", true, true},
	// U+D800-U+F8FF: surrogates and the BMP private use area.
	{"U+D7FF", "/a\ud7ff", true, true},
	{"U+E000 private use", "/a\ue000", false, false},
	{"U+F000 private use", "/a\uf000", false, false},
	{"U+F8FF private use", "/a\uf8ff", false, false},
	{"U+F900", "/a\uf900", true, true},
	// U+FFF0-U+FFFF: specials and noncharacters.
	{"U+FEFF byte order mark", "/a\ufeff", true, true},
	{"U+FFEF", "/a\uffef", true, true},
	{"U+FFF0", "/a\ufff0", false, false},
	{"U+FFFD replacement character", "/a\ufffd", false, false},
	{"U+FFFE", "/a\ufffe", false, false},
	{"U+FFFF", "/a\uffff", false, false},
	// Beyond the BMP: surrogate pairs in UTF-16.
	{"U+10000", "/a\U00010000", false, false},
	{"emoji", "/locks/report-🐂", false, false},
	{"emoji with ZWJ", "/a\U0001F469\u200d\U0001F4BB", false, false},
	{"U+10FFFF", "/a\U0010ffff", false, false},
	// Not UTF-8: the server reads U+FFFD.
	{"byte 0xFF", "/a\xff", false, false},
	{"truncated sequence", "/a\xe2\x82", false, false},
	{"overlong slash", "/a\xc0\xaf", false, false},
	{"surrogate in UTF-8", "/a\xed\xa0\x80", false, false},
	// Allowed beyond ASCII.
	{"combining acute", "/e\u0301", true, true},
	{"combining mark first", "/\u0301", true, true},
	{"zero width joiner", "/a\u200db", true, true},
	{"Latin-1 letter", "/caf\u00e9", true, true},
	{"Cyrillic", "/замок", true, true},
	{"CJK", "/锁", true, true},
	{"Japanese", "/ロック", true, true},
	{"Arabic", "/قفل", true, true},
}

func TestValidate(t *testing.T) {
	for _, tc := range edges {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error, ok bool) {
				t.Helper()
				if ok {
					assert.NoError(t, err, "%s %q: ZooKeeper accepts it", what, tc.path)
					return
				}
				if assert.Error(t, err, "%s %q: ZooKeeper rejects it", what, tc.path) {
					assert.ErrorIs(t, err, ErrInvalid)
					assert.Contains(t, err.Error(), strconv.Quote(tc.path), "the error names the path as given")
				}
			}
			check("Validate", Validate(tc.path), tc.ok)
			check("ValidateSequential", ValidateSequential(tc.path), tc.seq)
		})
	}
}

// TestValidateReason checks that the error says what the server objects to,
// above all where a Go programmer would not expect it.
func TestValidateReason(t *testing.T) {
	for _, tc := range []struct{ path, reason string }{
		{"", "empty"},
		{"a", "must start with /"},
		{"/a/", "must not end with /"},
		{"/a//b", "empty component"},
		{"/a/./b", "relative component ."},
		{"/a/..", "relative component .."},
		{"/a\x00", "NUL at byte 2"},
		{"/a\u0085", "U+0085 at byte 2 is in a range"},
		{"/locks/report-🐂", "U+1F402 at byte 14 is stored as the UTF-16 surrogates D83D DC02"},
		{"/a\xff", "byte 0xff at 2 is not UTF-8"},
	} {
		err := Validate(tc.path)
		if assert.Error(t, err, "%q", tc.path) {
			assert.Contains(t, err.Error(), tc.reason)
		}
	}
}

// TestValidateEveryCodePoint puts every code point of the BMP, and a sample
// beyond it, first and last in a name, to Validate and compares with the ranges ZooKeeper rejects,
// written here as code point intervals: everything above U+FFFF is
// rejected because it becomes surrogates. A surrogate code point has no
// UTF-8 form; string(r) gives U+FFFD, which is rejected too.
func TestValidateEveryCodePoint(t *testing.T) {
	rejected := [][2]rune{{0x0000, 0x001F}, {0x007F, 0x009F}, {0xD800, 0xF8FF}, {0xFFF0, utf8.MaxRune}}
	var runes []rune
	for r := rune(0); r <= 0x10100; r++ {
		runes = append(runes, r)
	}
	for r := rune(0x10101); r < utf8.MaxRune; r += 0xFF { // one branch decides them all
		runes = append(runes, r)
	}
	runes = append(runes, utf8.MaxRune)
	for _, r := range runes {
		want := true
		for _, iv := range rejected {
			if iv[0] <= r && r <= iv[1] {
				want = false
			}
		}
		for _, p := range []string{"/" + string(r) + "z", "/a" + string(r)} {
			if r == '/' {
				continue // a separator, not a character of a name
			}
			if got := Validate(p) == nil; got != want {
				require.Equal(t, want, got, "%U in %q", r, p)
			}
		}
	}
}

func TestJoinStripParent(t *testing.T) {
	assert.Equal(t, "/a", Join("", "/a"))
	assert.Equal(t, "/app", Join("/app", "/"))
	assert.Equal(t, "/app/a", Join("/app", "/a"))
	assert.Equal(t, "/a", Strip("/app", "/app/a"))
	assert.Equal(t, "/", Strip("/app", "/app"))
	assert.Equal(t, "/a", Strip("", "/a"))
	assert.Equal(t, "/", Parent("/a"))
	assert.Equal(t, "/a/b", Parent("/a/b/c"))
}
