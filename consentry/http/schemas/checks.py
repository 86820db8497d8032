"""Check requests (generation, upload, output) as the API receives them as JSON."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from consentry.gate import MAX_IMAGES, MAX_PROMPT_CHARS


class GenerationCheck(BaseModel):
    """A generation or edit request, as the platform is about to run it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description=f"the user's prompt, 1-{MAX_PROMPT_CHARS} characters")
    images: list[str] = Field(default_factory=list,
                              description=f"input photos as base64, at most {MAX_IMAGES}")
    account: str | None = Field(default=None, description="the platform's account id")
    thread: str | None = Field(
        default=None, description="the platform's id for the conversation or reply chain: "
                                  "the request is judged with the thread's recent turns")


class UploadCheck(BaseModel):
    """An image a user is uploading to the platform."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the image, base64")
    account: str | None = Field(default=None, description="the uploader's account id")
    content_id: str | None = Field(
        default=None, description="the platform's id for this upload: it joins the content "
                                  "index so that later bank entries find it (sweep)")
    url: str | None = Field(default=None, description="where the upload will be shown")


class OutputCheck(BaseModel):
    """An image the platform's model generated, before anyone sees it."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the generated image, base64")
    generation_id: str | None = Field(
        default=None, description="the verdict id of the generation check that let the "
                                  "request run (ties the output to the account)")


class OutputImage(BaseModel):
    """An allowed output to be marked: the bytes its output check was sent."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the checked output image, base64")
