module github.com/xenvmm/xenvmm

go 1.26.8
