package provider

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// groupInfoMsg returns the GroupInfo of a pending commit's epoch.
func groupInfoMsg(t testing.TB, pc *mls.PendingCommit) *mls.MLSMessage {
	t.Helper()
	gi, err := pc.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

// groupInfoOf returns the GroupInfo of a pending commit's epoch, unwrapped.
func groupInfoOf(t testing.TB, pc *mls.PendingCommit) *mls.GroupInfo {
	return groupInfoMsg(t, pc).GroupInfo
}
