module primehub.local/pause

go 1.24
