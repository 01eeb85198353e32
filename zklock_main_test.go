package zklock_test

import (
	"testing"

	"github.com/zklock/zklock/internal/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }
