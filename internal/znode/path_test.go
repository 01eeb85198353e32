package znode

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b-c_d.e", true},
		{"/locks/_c_0f6a-lock-0000000001", true},
		{"", false},
		{"a", false},
		{"/a/", false},
		{"//a", false},
		{"/a//b", false},
		{"/a/./b", false},
		{"/a/..", false},
		{"/a\x00b", false},
		{"/a\x1fb", false},
		{"/a\u0085", false},
		{"/a\uffff", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := Validate(tc.path)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalid)
				assert.Contains(t, err.Error(), "path")
			}
		})
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
