"""Simulated ground observations for the EuroSAT benchmark (GRAFT's alt-text mode, paper section 4.4).

Pretrained CLIP cannot be downloaded here, so the benchmark replaces each ground photo by its "alt-text": a short
description of what a person standing inside the satellite tile would photograph. Each EuroSAT class has a pool of
such descriptions, written from the ground (people, objects, sounds of the place), and unrelated distractors
(food, selfies, pets, ...) are mixed in at a configurable rate, as in real Flickr uploads.

The evaluation class names (CLIP's EuroSAT names, `EUROSAT_CLASSNAMES`) share no word with any observation
(checked by `vocabulary_overlap` and in the tests), so the zero-shot result measures transfer through the text
encoder's semantics, not string matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from graft_hf.evaluation.templates import CLIP_EUROSAT_TEMPLATES as _CLIP_EUROSAT_TEMPLATES
from graft_hf.evaluation.templates import EUROSAT_CLASSNAMES as _CLIP_EUROSAT_CLASSNAMES
from graft_hf.evaluation.templates import EUROSAT_LABELS as _EUROSAT_LABELS

# Label order of the eurosat-rgb release (its ClassLabel); names used in the zero-shot prompts (CLIP's EuroSAT names).
EUROSAT_LABELS = list(_EUROSAT_LABELS)
EUROSAT_CLASSNAMES = list(_CLIP_EUROSAT_CLASSNAMES)
# CLIP's EuroSAT prompt templates.
EUROSAT_TEMPLATES = list(_CLIP_EUROSAT_TEMPLATES)

OBSERVATIONS: dict[str, list[str]] = {
    "AnnualCrop": [
        "golden wheat swaying in the wind",
        "a combine harvester cutting barley at the seasonal harvest",
        "rows of young maize sprouting after the yearly sowing",
        "a tractor ploughing an arable field",
        "freshly harvested straw bales",
        "a sunflower field in full bloom",
        "rapeseed fields blooming bright yellow",
        "a farmer harvesting potatoes in the field",
        "sugar beet growing in long straight furrows",
        "cereal fields stretching to the horizon",
        "ripe oats ready for the seasonal harvest",
        "a seed drill sowing winter wheat",
        "stubble fields after the yearly grain harvest",
        "an irrigation sprinkler over soybean fields",
        "seasonal planting of cereals",
        "a grain trailer being filled at harvest time",
        "ploughed fields waiting for spring sowing",
        "fields sown and harvested every year",
        "yearly planting of barley and wheat",
        "a harvest festival after the grain season",
    ],
    "Forest": [
        "tall pine trees towering over a mossy trail",
        "sunlight filtering through a dense canopy of beech",
        "mushrooms growing on a fallen log",
        "a deer hiding among spruce trunks",
        "hikers on a shady path under oak trees",
        "ferns covering the ground between conifers",
        "a woodpecker on a birch trunk",
        "autumn leaves carpeting the woods",
        "a logging truck stacked with timber",
        "the thick dark woods after rain",
        "moss-covered stones under old firs",
        "a wooden hunting stand among the trees",
        "a fox crossing a trail in the woodland",
        "pine cones and needles on the ground",
        "misty morning among towering larches",
        "a woodland cabin surrounded by trees",
    ],
    "HerbaceousVegetation": [
        "dense shrubs and bushes on a dry hillside",
        "wild heather and shrubs covering a rocky slope",
        "thorny bushes and scrub along an abandoned track",
        "a hiker pushing through gorse shrubs",
        "dry scrub and thorny bushes in the heat",
        "bees buzzing over wild shrubs",
        "a moorland of low shrubs with scattered boulders",
        "overgrown bushes and tall weeds",
        "broom shrubs blooming yellow on a hill",
        "untamed wild scrub near a quarry",
        "a heath with low tangled shrubs",
        "butterflies over wild bushes and herbs",
        "rough bramble thickets and shrubs",
        "sagebrush and dry shrubs in the sun",
        "a wild scrubby plot overgrown with bushes",
        "juniper shrubs dotting a dry hill",
        "a maquis of evergreen shrubs",
        "wild bushland with no paths",
    ],
    "Highway": [
        "cars speeding along a multi-lane motorway",
        "a traffic jam during rush hour",
        "trucks on the autobahn",
        "a motorway interchange with ramps and overpasses",
        "a toll booth with queues of vehicles",
        "a service station beside the expressway",
        "overhead signs above the fast lanes",
        "a bridge carrying traffic over a valley",
        "guard rails and asphalt stretching to the horizon",
        "night traffic with streaking headlights",
        "a lorry overtaking a bus on the freeway",
        "the hard shoulder with a broken down van",
        "lane markings on fresh tarmac",
        "a roundabout with heavy traffic",
        "noise barriers along the motorway",
        "a car driving on the ring expressway at dusk",
    ],
    "Industrial": [
        "a huge warehouse with loading docks",
        "smokestacks of a factory",
        "shipping containers stacked at a logistics park",
        "a steel plant with glowing furnaces",
        "forklifts moving pallets in a distribution center",
        "a car assembly plant parking lot full of new vehicles",
        "large flat roofs of a business park",
        "a chemical refinery with tanks and pipes",
        "a supermarket car park and shopping mall",
        "workers in hard hats at a manufacturing site",
        "a recycling yard with scrap metal",
        "cranes at a freight terminal",
        "an office park with glass facades",
        "a power station with cooling towers",
        "trucks queueing at a factory gate",
        "a gravel works with conveyor belts",
    ],
    "Pasture": [
        "cows grazing on lush green grass",
        "sheep behind a wooden fence in the meadow",
        "horses in a grassy paddock",
        "a herd of dairy cattle on a meadow",
        "a farmer herding goats on grassland",
        "a water trough for livestock",
        "grazing cattle under a single oak",
        "a flock of sheep on a gentle green hill",
        "a hay meadow freshly mown",
        "lambs playing on short grass",
        "an electric fence around grazing livestock",
        "a cowshed next to green grassland",
        "black and white cows lying in the grass",
        "a shepherd dog rounding up the flock",
        "a grassy paddock with a pony",
        "a grassland meadow for cattle grazing",
    ],
    "PermanentCrop": [
        "rows of grapevines on a vine plantation",
        "an apple plantation in blossom",
        "an olive plantation with trees in neat lines",
        "picking cherries on a fruit plantation",
        "a winemaker harvesting grapes in the vineyard",
        "a citrus plantation heavy with fruit",
        "a hazelnut plantation planted in a grid",
        "pruned vines on a sunny vineyard slope",
        "netting over a berry plantation",
        "a peach orchard plantation in summer",
        "hop plantation with tall trellises",
        "workers harvesting pears on an orchard plantation",
        "an almond plantation blossoming in early spring",
        "a tractor spraying between plantation rows",
        "a winery surrounded by its vine plantations",
        "a tea plantation on terraced hills",
        "a long-lived plantation of orchards",
        "kiwi vines on a fruit plantation",
    ],
    "Residential": [
        "a quiet suburban street with family houses",
        "children playing in a backyard of a house",
        "rows of terraced houses with gardens",
        "a neighbourhood playground between houses",
        "a mailman delivering letters to houses",
        "tiled roofs and chimneys of village houses",
        "a garden barbecue with neighbours",
        "parked cars along a housing estate",
        "a dog walker in a suburban neighbourhood",
        "a block of flats in a city suburb",
        "a housing development of new houses",
        "front yards with hedges and garden gnomes",
        "a school bus stopping in the neighbourhood",
        "balconies with flower boxes on a housing block",
        "a cul-de-sac of detached houses",
        "a dense urban neighbourhood of houses and flats",
    ],
    "River": [
        "a kayak paddling down the stream",
        "fishing from a muddy bank as the current flows past",
        "a bridge over flowing water",
        "a barge cruising along the waterway",
        "ducks floating on the current",
        "willow trees along the banks of the stream",
        "rapids splashing over rocks",
        "a canal lock with boats waiting",
        "a footpath following the winding water",
        "an old stone mill by the rushing water",
        "swans gliding on the slow current",
        "floodwater rising over the banks",
        "a ferry crossing the wide stream",
        "a muddy estuary at low tide",
        "a heron standing in the shallow stream",
        "rowing boats moored along the embankment",
    ],
    "SeaLake": [
        "waves crashing on a sandy beach",
        "a sailboat far out on open water",
        "swimmers in calm blue water",
        "a pier stretching into the water",
        "a sunset over the vast water",
        "a lighthouse on the coast",
        "jet skis racing across the bay",
        "a rowing boat on still water surrounded by hills",
        "gulls above the harbour",
        "a ferry leaving the port",
        "a paddleboarder on a glassy reservoir",
        "ice skating on a frozen pond",
        "the shoreline with pebbles and driftwood",
        "fishermen casting from a jetty",
        "a yacht anchored in a quiet cove",
        "a sandy bay with beach umbrellas",
    ],
}

# Photos unrelated to the place: people upload these everywhere.
DISTRACTORS: list[str] = [
    "a plate of spaghetti carbonara",
    "a selfie with sunglasses",
    "my cat sleeping on the sofa",
    "a birthday cake with candles",
    "a cup of coffee and a croissant",
    "a group photo of friends smiling",
    "a puppy chewing a toy",
    "a close up of a smartphone screen",
    "a glass of beer on a table",
    "a wedding ceremony",
    "a pizza fresh from the oven",
    "a baby laughing",
    "a concert crowd with stage lights",
    "a close up of a flower in a vase",
    "a family portrait",
    "a bowl of ramen",
    "a skateboarder doing a trick",
    "my new sneakers",
    "a painting in a museum",
    "a blurry photo of the night sky",
    "a hamburger with fries",
    "a parrot on a shoulder",
    "a handwritten note",
    "a cocktail with a straw",
]


@dataclass(frozen=True)
class ObservationSampler:
    """Draws the simulated ground observations of one satellite tile.

    Args:
        min_photos: Fewest observations per tile.
        max_photos: Most observations per tile (GRAFT keeps at most 25 photos per tile).
        distractor_rate: Probability that an observation is an unrelated photo.
        seed: Base seed; a tile's draw depends only on `(seed, tile_index)`.
    """

    min_photos: int = 1
    max_photos: int = 25
    distractor_rate: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_photos <= self.max_photos:
            raise ValueError(f"need 1 <= min_photos <= max_photos, got {self.min_photos} and {self.max_photos}")
        if not 0.0 <= self.distractor_rate < 1.0:
            raise ValueError(f"distractor_rate must be in [0, 1), got {self.distractor_rate}")

    def sample(self, label: str, tile_index: int) -> list[str]:
        """Observations for tile `tile_index` of class `label` (a EuroSAT label name)."""
        if label not in OBSERVATIONS:
            raise ValueError(f"unknown EuroSAT label {label!r}; expected one of {EUROSAT_LABELS}")
        rng = np.random.default_rng([self.seed, tile_index])
        count = int(rng.integers(self.min_photos, self.max_photos + 1))
        pool = OBSERVATIONS[label]
        texts = []
        for _ in range(count):
            if rng.random() < self.distractor_rate:
                texts.append(DISTRACTORS[int(rng.integers(len(DISTRACTORS)))])
            else:
                texts.append(pool[int(rng.integers(len(pool)))])
        return texts


_STOP_WORDS = {"a", "an", "the", "or", "of", "and"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP_WORDS}


def vocabulary_overlap(classnames: list[str] | None = None) -> dict[str, set[str]]:
    """Words shared between the evaluation class names and any observation (empty when the benchmark is clean)."""
    class_words = set().union(*(_words(name) for name in (classnames or EUROSAT_CLASSNAMES)))
    all_texts = [t for pool in OBSERVATIONS.values() for t in pool] + DISTRACTORS
    return {text: _words(text) & class_words for text in all_texts if _words(text) & class_words}


def all_observation_texts() -> list[str]:
    """Every distinct observation text (class pools then distractors), for embedding once."""
    return list(dict.fromkeys([t for label in EUROSAT_LABELS for t in OBSERVATIONS[label]] + DISTRACTORS))


__all__ = [
    "DISTRACTORS",
    "EUROSAT_CLASSNAMES",
    "EUROSAT_LABELS",
    "EUROSAT_TEMPLATES",
    "OBSERVATIONS",
    "ObservationSampler",
    "all_observation_texts",
    "vocabulary_overlap",
]
