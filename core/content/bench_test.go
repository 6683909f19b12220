package content

import (
	"testing"
)

func benchVectors(b *testing.B) map[string][]byte {
	out := map[string][]byte{}
	for _, n := range []string{"original", "attachment", "multipart-3"} {
		out[n] = readVector(b, n)
	}
	return out
}

func BenchmarkDecode(b *testing.B) {
	for name, data := range benchVectors(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for name, data := range benchVectors(b) {
		m, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMessageID(b *testing.B) {
	for name, data := range benchVectors(b) {
		for _, v := range []IDVersion{IDDraft08, IDDraft07} {
			b.Run(name+"/"+v.String(), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ComputeID(v, data, "mimi://example.com/u/alice-smith", "mimi://example.com/r/engineering_team"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBuildMarkdown is the adapter's send path: build, encode, ID.
func BenchmarkBuildMarkdown(b *testing.B) {
	bld := &Builder{SenderURI: "mimi://example.com/u/alice-smith", RoomURI: "mimi://example.com/r/engineering_team"}
	b.ReportAllocs()
	for b.Loop() {
		m, err := bld.Markdown("Hi everyone, we just shipped release 2.0. __Good  work__!")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := m.EncodeWithID(IDDraft08); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStatusReport(b *testing.B) {
	data := readVectorPath(b, "testdata/status/status.cbor")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStatusReport(data); err != nil {
			b.Fatal(err)
		}
	}
}
