package provider

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// mediaTypeMIMI is the media type of MIMI content (content-08).
const mediaTypeMIMI = "application/mimi-content"

// roomExtensions are the GroupContext extensions of rooms we create: an app_data_dictionary
// advertising application/mimi-content in content_media_types (mls-extensions-10), so that
// application data is framed with ApplicationFraming.
func roomExtensions() (mls.Extensions, error) {
	types, err := mls.EncodeContentMediaTypes([]mls.MediaType{{Type: mediaTypeMIMI}})
	if err != nil {
		return nil, err
	}
	ext, err := mls.AppDataDictionary{}.Set(mls.ComponentContentMediaTypes, types).Extension()
	if err != nil {
		return nil, err
	}
	return mls.Extensions{ext}, nil
}

// framed reports whether c's group frames its application data, remembered per group (the
// app_data_dictionary it reads also holds the whole participant list).
func (c *clientState) framed() bool {
	if c.framing.g != c.Group {
		c.framing.g, c.framing.on = c.Group, framed(c.Group)
	}
	return c.framing.on
}

// framed reports whether g advertises content media types (its application data is framed).
func framed(g *mls.Group) bool {
	d, err := g.AppData()
	if err != nil {
		return false
	}
	_, ok := d.Get(mls.ComponentContentMediaTypes)
	return ok
}

// frame wraps MIMI content for c's group.
func frame(c *clientState, content []byte) ([]byte, error) {
	if !c.framed() {
		return content, nil
	}
	a := &mls.ApplicationFraming{MediaType: mls.MediaType{Type: mediaTypeMIMI}, Content: content}
	return a.Encode()
}

// unframe returns the MIMI content of application data received in c's group.
func unframe(c *clientState, data []byte) ([]byte, error) {
	if !c.framed() {
		return data, nil
	}
	a, err := mls.DecodeApplicationFraming(data)
	if err != nil {
		return nil, err
	}
	if a.MediaType.Type != "" && a.MediaType.Type != mediaTypeMIMI {
		return nil, fmt.Errorf("provider: application data of type %q", a.MediaType.Type)
	}
	return a.Content, nil
}
