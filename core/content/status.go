package content

import (
	"fmt"
	"strconv"
)

// StatusMediaType is the media type of a message status report
// (draft-mahy-mimi-message-status-01). A report travels as the content of a
// SinglePart inside an ordinary mimiContent message.
const StatusMediaType = "application/mimi-message-status"

// MaxStatusEntries bounds the entries of one status report.
const MaxStatusEntries = 4096

// Status is the state of one message as reported by a recipient.
type Status uint8

// Statuses of draft-mahy-mimi-message-status-01 §5. Values 7..255 are
// unknown; they decode and re-encode unchanged.
const (
	StatusUnread    Status = 0
	StatusDelivered Status = 1
	StatusRead      Status = 2
	StatusExpired   Status = 3
	StatusDeleted   Status = 4
	StatusHidden    Status = 5
	StatusError     Status = 6
)

var statusNames = [...]string{"unread", "delivered", "read", "expired", "deleted", "hidden", "error"}

// String names the status.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// MessageStatus is one entry of a report.
type MessageStatus struct {
	MessageID MessageID
	Status    Status
}

// StatusReport reports the status of messages of one room.
type StatusReport []MessageStatus

// DecodeStatusReport parses a MessageStatusReport with the same strictness as
// Decode.
func DecodeStatusReport(data []byte) (StatusReport, error) {
	if len(data) > MaxContentSize {
		return nil, verr("MessageStatusReport", -1, ErrTooLarge, "%d octets exceeds the limit of %d", len(data), MaxContentSize)
	}
	r := reader{data: data}
	n, err := r.arrayHead("MessageStatusReport", -1)
	if err != nil {
		return nil, err
	}
	if n > MaxStatusEntries {
		return nil, verr("MessageStatusReport", 0, ErrTooLarge, "%d entries exceed the limit of %d", n, MaxStatusEntries)
	}
	rep := make(StatusReport, 0, n)
	for i := 0; i < n; i++ {
		field := "MessageStatusReport[" + strconv.Itoa(i) + "]"
		if _, err := r.arrayHead(field, 2); err != nil {
			return nil, err
		}
		id, err := readMessageID(&r, field+".messageId")
		if err != nil {
			return nil, err
		}
		st, err := r.uintItem(field+".status", 255, "the status range 0..255")
		if err != nil {
			return nil, err
		}
		rep = append(rep, MessageStatus{MessageID: id, Status: Status(st)})
	}
	if r.off != len(data) {
		return nil, verr("MessageStatusReport", r.off, ErrMalformed, "%d trailing bytes", len(data)-r.off)
	}
	return rep, nil
}

// Encode writes the report as deterministic CBOR.
func (rep StatusReport) Encode() ([]byte, error) {
	if len(rep) > MaxStatusEntries {
		return nil, verr("MessageStatusReport", -1, ErrTooLarge, "%d entries exceed the limit of %d", len(rep), MaxStatusEntries)
	}
	v := make([]any, len(rep))
	for i, e := range rep {
		v[i] = []any{e.MessageID[:], uint8(e.Status)}
	}
	out, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode status report: %w", err)
	}
	return out, nil
}

// StatusReport returns the report carried by the message, if its body is a
// SinglePart of type StatusMediaType.
func (m *Message) StatusReport() (StatusReport, bool, error) {
	sp, ok := m.Body.Body.(SinglePart)
	if !ok || mediaTypeOnly(sp.ContentType) != StatusMediaType {
		return nil, false, nil
	}
	rep, err := DecodeStatusReport(sp.Content)
	return rep, true, err
}
