package zktesting

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseConnectResponse(t *testing.T) {
	passwd := []byte("0123456789abcdef")
	body := binary.BigEndian.AppendUint32(nil, 0)    // protocol version
	body = binary.BigEndian.AppendUint32(body, 4000) // timeout
	body = binary.BigEndian.AppendUint64(body, 0x1234)
	body = binary.BigEndian.AppendUint32(body, uint32(len(passwd)))
	body = append(body, passwd...)
	body = append(body, 0) // read-only
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)

	for n := range 40 { // the frame up to the end of the password
		_, _, _, complete := parseConnectResponse(frame[:n])
		assert.False(t, complete, "%d bytes", n)
	}
	id, pw, ok, complete := parseConnectResponse(frame)
	assert.True(t, complete)
	assert.True(t, ok)
	assert.Equal(t, int64(0x1234), id)
	assert.Equal(t, passwd, pw)

	expired := append([]byte(nil), frame...)
	binary.BigEndian.PutUint32(expired[8:], 0) // timeout 0: the session is gone
	_, _, ok, complete = parseConnectResponse(expired)
	assert.True(t, complete)
	assert.False(t, ok)

	_, _, ok, complete = parseConnectResponse([]byte("Zookeeper version: 3.8.0-...\nClients:\n"))
	assert.True(t, complete, "a four-letter word's reply")
	assert.False(t, ok)
}
