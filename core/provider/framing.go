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

// framed reports whether g advertises content media types (its application data is framed).
func framed(g *mls.Group) bool {
	d, err := g.AppData()
	if err != nil {
		return false
	}
	_, ok := d.Get(mls.ComponentContentMediaTypes)
	return ok
}

// frame wraps MIMI content for g.
func frame(g *mls.Group, content []byte) ([]byte, error) {
	if !framed(g) {
		return content, nil
	}
	a := &mls.ApplicationFraming{MediaType: mls.MediaType{Type: mediaTypeMIMI}, Content: content}
	return a.Encode()
}

// unframe returns the MIMI content of application data received in g.
func unframe(g *mls.Group, data []byte) ([]byte, error) {
	if !framed(g) {
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
