module pylon.dev/e2e/probe

go 1.24
