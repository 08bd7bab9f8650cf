"""streamlib for Python: read and write streamlib streams as numpy frames, write ``sl-*``
stages in a few lines, and drive pipelines of stages.

```python
import sys, streamlib

for frame in streamlib.Reader(sys.stdin.buffer).frames():
    print(frame.frame_number, frame.time, frame.image.shape, frame.metadata)
```

The byte layout is docs/wire-format.md in the streamlib repository; docs/python.md is the
guide.
"""

from .errors import (
    EmptyStream,
    MalformedStream,
    NotAStream,
    PipelineError,
    StreamError,
    TooLarge,
    TruncatedStream,
    UnsupportedVersion,
)
from .messages import (
    ALL_STREAMS,
    CODECS,
    PIXEL_FORMATS,
    SAMPLE_FORMATS,
    AudioChunk,
    Box,
    DataMessage,
    End,
    Packet,
    StreamInfo,
    Unknown,
    UnknownValue,
    VideoFrame,
    plane_dims,
)
from .pipeline import feed, run
from .stage import DROP, Filter, Interrupted, Sink, Source, UsageError, filter, run_stage, sink, source
from .streams import Reader, Writer, describe_foreign, enlarge_pipe

__version__ = "0.1.0"

__all__ = [
    "ALL_STREAMS", "CODECS", "DROP", "PIXEL_FORMATS", "SAMPLE_FORMATS", "AudioChunk", "Box",
    "DataMessage", "EmptyStream", "End", "Filter", "Interrupted", "MalformedStream",
    "NotAStream", "Packet", "PipelineError", "Reader", "Sink", "Source", "StreamError",
    "StreamInfo", "TooLarge", "TruncatedStream", "Unknown", "UnknownValue",
    "UnsupportedVersion", "UsageError", "VideoFrame", "Writer", "describe_foreign",
    "enlarge_pipe", "feed", "filter", "plane_dims", "run", "run_stage", "sink", "source",
]
