"""`parley voices [NAME --sample]`: the voices the appliance can speak with, and how each sounds."""

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.config import load_settings
from parley.appliance.speech.voices import DEFAULT_VOICE, SAMPLE_TEXT, UnknownVoice, find_voice, list_voices


def register(commands):
    parser = commands.add_parser("voices", help="list the TTS voices; render a sample of one to a WAV")
    parser.add_argument("name", nargs="?", metavar="NAME", help="a voice, as listed")
    parser.add_argument("--sample", action="store_true", help="speak a sample line into a WAV file")
    parser.add_argument("--text", default=SAMPLE_TEXT, help="the line to speak (default: a greeting)")
    parser.add_argument("--out", metavar="FILE", help="where to write the WAV (default var/voices/NAME-sample.wav)")
    parser.add_argument("--rate", type=int, choices=(8000, 16000, 22050, 24000, 48000),
                        help="sample rate of the WAV (default the voice's own)")
    parser.set_defaults(run=run)


def run(args):
    from parley.appliance.cli import UserError

    settings = load_settings()
    if args.name is None:
        if args.sample:
            raise UserError("--sample needs a voice: `parley voices NAME --sample` (see `parley voices` for names)")
        return show_catalog(settings)
    try:
        voice = find_voice(settings.models_dir, args.name)
    except UnknownVoice as exc:
        raise UserError(str(exc)) from None
    if not args.sample:
        return show_catalog(settings, only=voice.name)
    from parley.appliance.speech.voices import render_sample

    out = args.out or settings.var_dir / "voices" / f"{voice.name}-sample.wav"
    path, seconds = render_sample(voice, args.text, out, sample_rate=args.rate)
    Console().print(f"[green]✓[/] {escape(voice.name)}: {seconds:.1f} s at {args.rate or voice.sample_rate} Hz "
                    f"written to {escape(str(path))}")
    return 0


def show_catalog(settings, only=None):
    voices = [v for v in list_voices(settings.models_dir) if only in (None, v.name)]
    console = Console()
    if not voices:
        console.print(f"no voices in {escape(str(settings.models_dir))}: run `parley models fetch` "
                      f"(the default voice is {DEFAULT_VOICE})")
        return 1
    table = Table(title=f"voices in {settings.models_dir}")
    for column in ("name", "rate", "language", "espeak voice", "speakers", "size"):
        table.add_column(column, no_wrap=True)
    for voice in voices:
        name = f"{voice.name} (default)" if voice.name == DEFAULT_VOICE else voice.name
        table.add_row(escape(name), f"{voice.sample_rate} Hz", voice.language, voice.espeak_voice,
                      str(voice.speakers), f"{voice.size_bytes / 1e6:.1f} MB")
    console.print(table)
    return 0
