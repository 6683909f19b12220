package provider

import (
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// kindOf is the envelope kind under which a received MIMI message goes to the adapters: the
// dispatch key of bridges.Dispatch. The adapters read the rest (the target message ID from
// Replaces or InReplyTo, the emoji, the status entries) from the content itself, and the
// envelope's MessageID is the message's own ID.
//
//   - reaction (a reaction part in reply to a message, content-08 §5.3) and unreact (a NullPart
//     of disposition reaction replacing the reaction, §5.7): KindReaction. A reaction body that
//     replies to nothing (multipart-2 of the draft's examples) names no message to react to: it
//     goes as KindMessage and is shown as its text;
//   - delete (a NullPart replacing a message, §5.6): KindDelete;
//   - edit (new content replacing a message, §5.5): KindEdit;
//   - a message status report (application/mimi-message-status): KindReceipt;
//   - everything else (new messages, replies, attachments): KindMessage.
//
// m nil (content that did not decode) is KindMessage; such content is not delivered anyway.
func kindOf(m *content.Message) event.Kind {
	switch {
	case m == nil:
		return event.KindMessage
	case m.IsReaction() && m.InReplyTo != nil, m.IsUnreact():
		return event.KindReaction
	case m.IsDelete():
		return event.KindDelete
	case m.IsEdit():
		return event.KindEdit
	}
	if _, ok, _ := m.StatusReport(); ok {
		return event.KindReceipt
	}
	return event.KindMessage
}
