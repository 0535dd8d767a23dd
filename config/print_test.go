package config

import "fmt"

func fmtAll(c *Config) string { return fmt.Sprintf("%v %+v %#v", c, c.Component, c.Component.Secret) }
