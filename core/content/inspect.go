package content

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// inspectTextLimit bounds how much of a text part Inspect prints.
const inspectTextLimit = 4096

// Inspect decodes a MIMI content document and prints it for an administrator:
// every field, the parts tree with implied part indexes, the extensions, and
// timestamps in UTC, headed by the -08 message ID and the -07 one. Sender
// and room URIs come from extensions 1 and 2 unless senderURI or roomURI are
// non-empty, which override them; without both, Inspect says the ID cannot
// be computed. Attachment keys are shown by size only.
//
// If data is not a mimiContent document but a message status report or a
// MessageDerivedValues array, Inspect prints that instead. It returns the
// decoding error when data is none of them, and any write error.
func Inspect(w io.Writer, data []byte, senderURI, roomURI string) error {
	bw := bufio.NewWriter(w)
	p := &printer{w: bw}
	m, err := Decode(data)
	if err != nil {
		if rep, serr := DecodeStatusReport(data); serr == nil {
			p.line(0, "MIMI message status report (%s), %d octets, %d entries", StatusMediaType, len(data), len(rep))
			p.statusReport(1, rep)
			return flush(bw, p)
		}
		if d, derr := DecodeDerived(data); derr == nil {
			p.line(0, "MIMI MessageDerivedValues (content-08 §4.6), %d octets", len(data))
			p.derived(d)
			return flush(bw, p)
		}
		return fmt.Errorf("inspect: %w", err)
	}
	p.message(m, data, senderURI, roomURI)
	return flush(bw, p)
}

func flush(bw *bufio.Writer, p *printer) error {
	if p.err != nil {
		return fmt.Errorf("inspect: %w", p.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return nil
}

type printer struct {
	w   *bufio.Writer
	err error
}

func (p *printer) line(indent int, format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", indent), fmt.Sprintf(format, args...))
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func unixUTC(secs uint32) string { return time.Unix(int64(secs), 0).UTC().Format(time.RFC3339) }

func optID(id *MessageID) string {
	if id == nil {
		return "none"
	}
	return id.String()
}

func (p *printer) message(m *Message, data []byte, senderURI, roomURI string) {
	p.line(0, "MIMI content document (%s), %d octets", MediaType, len(data))
	src := "from extensions 1 and 2"
	switch {
	case senderURI != "" && roomURI != "":
		src = "from the command line"
	case senderURI != "" || roomURI != "":
		src = "partly from the command line, partly from extensions"
	}
	if senderURI == "" {
		senderURI = m.Extensions.SenderURI()
	}
	if roomURI == "" {
		roomURI = m.Extensions.RoomURI()
	}
	if senderURI == "" || roomURI == "" {
		p.line(0, "message ID: cannot be computed: sender URI %q, room URI %q (neither in extensions 1 and 2 nor given)", senderURI, roomURI)
	} else {
		for _, v := range []IDVersion{IDDraft08, IDDraft07} {
			if id, err := ComputeID(v, data, senderURI, roomURI); err != nil {
				p.line(0, "message ID (%s): cannot be computed: %v", v, err)
			} else {
				p.line(0, "message ID (%s): %s", v, id)
			}
		}
		p.line(1, "sender %s, room %s (%s)", senderURI, roomURI, src)
	}
	p.line(0, "salt:       %x", m.Salt[:])
	p.line(0, "replaces:   %s", optID(m.Replaces))
	if len(m.TopicID) == 0 {
		p.line(0, "topicId:    none")
	} else {
		p.line(0, "topicId:    %s (hex %x)", printable(m.TopicID), m.TopicID)
	}
	switch {
	case m.Expires == nil:
		p.line(0, "expires:    never")
	case m.Expires.Relative:
		p.line(0, "expires:    %d s after the recipient reads it (relative)", m.Expires.Time)
	default:
		p.line(0, "expires:    %s (absolute, %d)", unixUTC(m.Expires.Time), m.Expires.Time)
	}
	p.line(0, "inReplyTo:  %s", optID(m.InReplyTo))
	p.line(0, "extensions: %d", m.Extensions.Len())
	for _, k := range m.Extensions.Keys() {
		p.extension(&m.Extensions, k)
	}
	p.line(0, "body:")
	parts := m.Parts()
	for _, ip := range parts {
		p.part(ip)
	}
}

func (p *printer) extension(e *Extensions, k ExtensionKey) {
	raw, _ := e.Raw(k)
	name := knownKeyName(k)
	var val string
	switch k {
	case KeySenderURI:
		val = strconv.Quote(e.SenderURI())
	case KeyRoomURI:
		val = strconv.Quote(e.RoomURI())
	case KeySubject:
		s, _ := e.Subject()
		val = strconv.Quote(s)
	case KeySenderTimestamp:
		t, _ := e.SenderTimestamp()
		val = utc(t)
	case KeyExternalMessageID:
		x, _ := e.ExternalMessageID()
		val = x.String()
	case KeyLastSeen:
		ls, _ := e.LastSeen()
		var items []string
		for _, id := range ls.IDs {
			items = append(items, id.String())
		}
		for _, x := range ls.External {
			items = append(items, x.String())
		}
		val = "[" + strings.Join(items, ", ") + "]"
	default:
		d, err := cbor.Diagnose(raw)
		if err != nil {
			d = fmt.Sprintf("h'%x'", raw)
		}
		val = d
	}
	if name != "" {
		p.line(1, "%s %s: %s", k, name, val)
	} else {
		p.line(1, "%s: %s", k, val)
	}
}

func (p *printer) part(ip IndexedPart) {
	in := ip.Depth
	np := ip.Part
	lang := np.Language
	if lang == "" {
		lang = "-"
	}
	disp := np.Disposition.String()
	if np.Disposition.Effective() != np.Disposition {
		disp += " (treated as render)"
	}
	head := fmt.Sprintf("part %d: %s, disposition %s, language %s", ip.Index, np.Body.Cardinality(), disp, lang)
	switch b := np.Body.(type) {
	case NullPart:
		p.line(in, "%s (empty body: delete or unreact)", head)
	case MultiPart:
		p.line(in, "%s, %s of %d parts", head, b.Semantics, len(b.Parts))
	case SinglePart:
		p.line(in, "%s", head)
		p.line(in+1, "contentType: %q, %d octets", b.ContentType, len(b.Content))
		p.content(in+1, b)
	case ExternalPart:
		p.line(in, "%s", head)
		p.line(in+1, "contentType: %q", b.ContentType)
		p.line(in+1, "url:         %s", b.URL)
		if b.Expires == 0 {
			p.line(in+1, "expires:     never")
		} else {
			p.line(in+1, "expires:     %s", unixUTC(b.Expires))
		}
		if b.Size == 0 {
			p.line(in+1, "size:        unknown")
		} else {
			p.line(in+1, "size:        %d octets", b.Size)
		}
		p.line(in+1, "encAlg:      %d (%s)", b.EncAlg, aeadName(b.EncAlg))
		p.line(in+1, "key:         %d octets (not shown)", len(b.Key))
		p.line(in+1, "nonce:       %s", hexOrEmpty(b.Nonce))
		p.line(in+1, "aad:         %s", hexOrEmpty(b.AAD))
		p.line(in+1, "hashAlg:     %d (%s)", b.HashAlg, hashAlgName(b.HashAlg))
		p.line(in+1, "contentHash: %s", hexOrEmpty(b.ContentHash))
		p.line(in+1, "description: %q", b.Description)
		p.line(in+1, "filename:    %q", b.Filename)
	}
}

func (p *printer) content(in int, b SinglePart) {
	mt := strings.ToLower(mediaTypeOnly(b.ContentType))
	if mt == StatusMediaType {
		rep, err := DecodeStatusReport(b.Content)
		if err != nil {
			p.line(in, "invalid status report: %v", err)
			return
		}
		p.statusReport(in, rep)
		return
	}
	if strings.HasPrefix(mt, "text/") && utf8.Valid(b.Content) {
		text := b.Content
		cut := false
		if len(text) > inspectTextLimit {
			text, cut = text[:inspectTextLimit], true
			for !utf8.Valid(text) {
				text = text[:len(text)-1]
			}
		}
		for _, l := range strings.Split(string(text), "\n") {
			p.line(in, "| %s", printableLine(l))
		}
		if cut {
			p.line(in, "| ... (%d more octets)", len(b.Content)-len(text))
		}
		return
	}
	const hexLimit = 64
	if len(b.Content) > hexLimit {
		p.line(in, "content: %x... (%d more octets)", b.Content[:hexLimit], len(b.Content)-hexLimit)
	} else {
		p.line(in, "content: %x", b.Content)
	}
}

func (p *printer) statusReport(in int, rep StatusReport) {
	for _, e := range rep {
		p.line(in, "%s: %s", e.MessageID, e.Status)
	}
}

func (p *printer) derived(d *DerivedValues) {
	p.line(0, "messageId:            %s", d.MessageID)
	if d.HubAcceptedExtended != nil {
		diag, _ := cbor.Diagnose(d.HubAcceptedExtended)
		p.line(0, "hubAcceptedTimestamp: %s (extended time)", diag)
	} else {
		p.line(0, "hubAcceptedTimestamp: %s (%d ms)", utc(d.HubAccepted), d.HubAccepted.UnixMilli())
	}
	p.line(0, "mlsGroupId:           %x", d.MLSGroupID)
	p.line(0, "senderLeafIndex:      %d", d.SenderLeafIndex)
	p.line(0, "senderClientUrl:      %s", d.SenderClientURL)
	p.line(0, "senderUserUrl:        %s", d.SenderUserURL)
	p.line(0, "roomUrl:              %s", d.RoomURL)
}

// printable shows bytes as a quoted string when they are UTF-8 text.
func printable(b []byte) string {
	if utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	return "(binary)"
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	return fmt.Sprintf("%x", b)
}

// printableLine escapes control and other non-printable characters of a
// text line (so a message cannot drive the admin's terminal) and keeps the
// rest as it is.
func printableLine(l string) string {
	var b strings.Builder
	for _, r := range l {
		if r == '\t' || unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
