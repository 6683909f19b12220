package content

import (
	"bytes"
	"strings"
	"testing"
)

func TestInspectExamples(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			var data []byte
			switch ex.Type {
			case "mimiContent", "MessageDerivedValues":
				data = readVector(t, ex.Name)
			default:
				data = mustHex(t, ex.CBORHex)
			}
			var out bytes.Buffer
			if err := Inspect(&out, data, "", ""); err != nil {
				t.Fatal(err)
			}
			s := out.String()
			switch ex.Type {
			case "mimiContent":
				if !strings.Contains(s, "message ID (draft-08): "+ex.ExpectedMessageIDHex) {
					t.Errorf("-08 ID %s missing:\n%s", ex.ExpectedMessageIDHex, s)
				}
				if !strings.Contains(s, "message ID (draft-07): "+ex.Draft07.RecomputedHex) && len(ex.References) == 0 {
					// -07 IDs match the -07 vectors only where no reference
					// changed; otherwise the CBOR itself differs.
					t.Errorf("-07 ID %s missing:\n%s", ex.Draft07.RecomputedHex, s)
				}
				for _, want := range []string{"salt:       " + ex.SaltHex, ex.SenderURI, "body:", "part 0:"} {
					if !strings.Contains(s, want) {
						t.Errorf("output lacks %q:\n%s", want, s)
					}
				}
			case "MessageDerivedValues":
				if !strings.Contains(s, "2022-02-09T06:13:45.019Z") || !strings.Contains(s, ex.SenderClientURL) {
					t.Errorf("derived values output:\n%s", s)
				}
			default:
				if !strings.Contains(s, "status report") || !strings.Contains(s, "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4: read") {
					t.Errorf("status output:\n%s", s)
				}
			}
			if testing.Verbose() && ex.Name == "attachment" {
				t.Log("\n" + s)
			}
		})
	}
}

func TestInspectURIs(t *testing.T) {
	data := readVector(t, "original")
	var out bytes.Buffer
	// Overriding both URIs changes the ID and says so.
	if err := Inspect(&out, data, "mimi://example.com/u/bob-jones", "mimi://example.com/r/engineering_team"); err != nil {
		t.Fatal(err)
	}
	want, _ := ComputeID(IDDraft08, data, "mimi://example.com/u/bob-jones", "mimi://example.com/r/engineering_team")
	if !strings.Contains(out.String(), want.String()) || !strings.Contains(out.String(), "from the command line") {
		t.Errorf("override not used:\n%s", out.String())
	}
	// Without extensions 1 and 2 and without arguments there is no ID.
	noURIs := doc(t, hdr, noRefs, "a0", bodyOK)
	out.Reset()
	if err := Inspect(&out, noURIs, "", ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "message ID: cannot be computed") {
		t.Errorf("missing 'cannot be computed':\n%s", out.String())
	}
	out.Reset()
	if err := Inspect(&out, noURIs, "mimi://a/u/x", "mimi://a/r/y"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "message ID (draft-08): 01") {
		t.Errorf("arguments not used:\n%s", out.String())
	}
	if err := Inspect(&out, []byte{0x87}, "", ""); err == nil {
		t.Error("Inspect accepted garbage")
	}
}

// TestInspectEscapesControl: message text cannot send terminal escapes to
// the administrator's terminal.
func TestInspectEscapesControl(t *testing.T) {
	b := &Builder{SenderURI: alice, RoomURI: room}
	m, err := b.Text("red \x1b[31malert\x1b[0m\r\nnext")
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Inspect(&out, data, "", ""); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\r") || !strings.Contains(out.String(), `| red \x1b[31malert\x1b[0m\r`) {
		t.Errorf("control characters not escaped:\n%s", out.String())
	}
}
