package matrix

import "github.com/mimi-gateway/mimi-gateway/core/assets"

func assetsNew(dir string) (*assets.Store, error) { return assets.New(dir, "localhost", 0) }
