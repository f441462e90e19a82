//! Model file conversion into whisper.cpp ggml files.
