# Spoken prompts (voice_NAME.pcm in the running slot: 8-bit PCM at RATE Hz, made when the
# firmware was built: firmware/voice.py). A prompt plays in its own task, a chunk at a
# time, so that the flow never waits on it and a press is never kept waiting; a new
# prompt cuts the one playing. Only a board with a speaker has one (evaluator.py).
import asyncio

RATE = 7350
CHUNK = 512  # samples: 70 ms of speech between looks at the event loop


class Voice:
    def __init__(self, board, folder):
        self.board = board
        self.folder = folder
        self._task = None
        self._buf = bytearray(CHUNK)  # one, for every prompt: nothing new on the heap per chunk
        self.played = 0

    def say(self, name):
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._play(name))

    async def _play(self, name):
        try:
            f = open(self.folder + "/voice_" + name + ".pcm", "rb")
        except OSError:
            return  # a build without that prompt
        self.board.event("voice", clip=name)
        self.played += 1
        buf = self._buf
        out = self.board.audio_open(name, RATE)
        try:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                await self.board.audio_write(out, buf, n)
        finally:
            f.close()
            self.board.audio_close(out)
